"""The size cap of every kind of file evrobust reads, in one table (bytes).

A reader names the kind of file it expects; :mod:`evrobust.safeio.files` refuses a file larger than the kind's
cap before reading a byte of it, so a hostile or mistaken file can never make a command allocate more than the
cap (a JSON document is parsed into Python objects of a few times its size: the caps below keep that under
about 1 GB even for the largest kinds). ``docs/reliability.md`` prints this table.

The caps are generous for what evrobust writes itself (the largest real documents are noted beside each) and
small enough that a mistake is refused at once instead of exhausting memory.
"""

from __future__ import annotations

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

CAPS: dict[str, int] = {
    # JSON documents evrobust writes (largest seen: an attack JSON of 1,017 samples x 40 attacks, 0.6 MB).
    "run_config": 1 * MiB,  # <run>/config.json, about 3 KB
    "metrics": 32 * MiB,  # <run>/metrics.jsonl, one line per epoch (200 epochs: about 60 KB)
    "attack_result": 128 * MiB,  # <run>/attack-<mode>.json: per-sample flags of every attack
    "attack_partial": 128 * MiB,  # <run>/.attack-<mode>.partial.json: the same, batch by batch
    "analysis": 64 * MiB,  # <run>/analysis-<kind>.json (heatmaps, histograms, curves)
    "results": 64 * MiB,  # reproduce's <out>/<pipeline>/results.json (event heatmaps: ~30 MB)
    "report_manifest": 1 * MiB,  # report's .report-manifest.json: the files one report wrote
    "lock": 4 * KiB,  # .<target>.lock: one JSON holder record
    "verified_cache": 1 * MiB,  # <raw>/.verified.json: size, mtime and MD5 per raw file
    "store_metadata": 16 * MiB,  # a store's zarr.json files (root attributes: about 10 KB)
    "nir_metadata": 1 * MiB,  # the JSON attributes of an exported NIR graph
    "compare_input": 128 * MiB,  # a file given to `evrobust compare` (an attack JSON)
    "leaderboard": 16 * MiB,  # `evrobust leaderboard`'s leaderboard.json (9 entries: about 30 KB)
    # Binary inputs.
    "checkpoint": 8 * GiB,  # safetensors / torch.save weights (WRN-16-4 at width 1: 11 MB)
    "nir_graph": 8 * GiB,  # an exported .nir (HDF5) graph
    "store_chunk": 1 * GiB,  # one zarr chunk file (a CIFAR10-DVS sample at 128x128x10 frames: 1.3 MB raw)
    "raw_archive": 4 * GiB,  # a downloaded raw file (cifar-10-python.tar.gz: 163 MiB; a CIFAR10-DVS zip)
    "raw_member": 1 * GiB,  # one file inside a raw archive (a CIFAR batch: 31 MB)
    "events": 2 * GiB,  # one AEDAT recording (CIFAR10-DVS: about 0.5-4 MB each)
}
"""Kind -> the largest file of that kind evrobust reads, in bytes."""

JSON_MAX_DEPTH = 64
"""Nesting depth beyond which a JSON document is refused (evrobust's deepest document nests 7 levels)."""

JSON_MAX_STRING = 1 * MiB
"""Longest JSON string accepted anywhere (evrobust writes none longer than a few KB)."""


def cap(kind: str) -> int:
    """The byte cap of ``kind`` (KeyError for a kind that is not in :data:`CAPS`: a programming error)."""
    return CAPS[kind]
