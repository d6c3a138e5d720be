"""``evrobust attack --threat events|retiming``: attacks an event camera could see, on a trained run.

The frame attacks perturb the model input as real numbers. Here the adversary edits the integer event counts
of the store's test split instead (:mod:`evrobust.attacks.event_base`): the model is seen through the fixed
front end the dataset applies (``clip(count * count_unit / scale, 0, 1)``), the bins are the clean sample's,
and budgets are counted in events.

What is evaluated, per test sample of the first ``limit``:

- ``clean``: the model's prediction on the clean counts (equal to the frame pipeline's clean accuracy; a
  guard checks that the front end reproduces the dataset's input exactly on the first batch);
- per attack (``--attacks``, or the threat's defaults: ``sda`` for ``events``, ``retime-inf`` and
  ``retime-zero`` for ``retiming``): robust = correct on the clean counts and still correct on the attack's
  output. Only the clean-correct samples are attacked (rows of the batch, so every sample sees the random
  draws it would see in any batch).

Per attack and sample the result records ``events_changed`` (events added plus deleted; for retiming, the
events moved) and, for retiming, ``max_shift`` (the largest shift in bins). Samples that were not attacked
(clean-wrong) record ``null``. The largest shift in microseconds (``max_shift_us``: between the centres of the
frames an event left and entered) needs the frames' times, which a store does not keep (with
``split_by=number`` every sample's frames have their own duration): it is recorded where the recordings can be
rebuilt on demand (digits-dvs, from its deterministic emulator) and ``null`` elsewhere.

The store must hold the counts at the resolution the sensor recorded them: a store resized at preprocessing
(``--size``) spread each event over several model pixels in shares, and an event can no longer be inserted
or deleted there; it is refused in one line, as are stores of static images.

Outputs, in the run directory: ``attack-<threat>.json`` (schema ``attack_result``, ``threat`` and ``budgets``
set) and ``attack-<threat>.md``. Resumable per batch through ``attack-<threat>.partial.json`` (fingerprint:
options, checkpoint sha256, store digest), as the frame attacks are.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evrobust.analysis.evaluate import AttackFlags
from evrobust.attacks.base import predict
from evrobust.attacks.event_base import CountModel, EventAttack, EventFrontEnd, events_changed, retiming_stats
from evrobust.attacks.event_registry import (
    DEFAULT_MAX_SHIFT,
    EVENT_ATTACKS,
    EVENT_THREATS,
    create_event_attack,
    parse_event_attacks,
)
from evrobust.errors import UserInputError
from evrobust.pipelines.attack.core import batch_seed, flag_interval
from evrobust.pipelines.attack.inputs import (
    checkpoint_digest,
    load_evaluated_run,
    read_json_or_warn,
    resolve_device,
    result_paths,
    run_test_store,
    test_set_identity,
)
from evrobust.pipelines.common.event_tables import render_event_markdown
from evrobust.pipelines.common.options import MAX_LIMIT, check_attack_bounds
from evrobust.preprocess.locks import acquire as acquire_lock
from evrobust.safeio import check_write_target, remove_file, roundtrip
from evrobust.safeio.atomic import write_text_atomic

__all__ = ["DEFAULT_EVENT_SPEC", "EventInputs", "event_inputs", "render_event_markdown", "run_event_attack"]

logger = logging.getLogger(__name__)

DEFAULT_EVENT_SPEC = "pdsg"
"""The gradient spec the event attacks craft under unless ``--spec`` says otherwise: PDSG, the surrogate SDA
was published with (Lun et al., CVPR 2025)."""

EXAMPLE_CHANGES = 4096
"""At most this many changed cells of the example sample are written (the heatmap's data)."""


@dataclass
class EventInputs:
    """What the event attacks read from a store: the counts at sensor resolution and the front end's resize.

    Attributes:
        counts: ``[n, T, 2, Hs, Ws]`` unsigned: the first ``n`` test samples' events per frame, pixel and
            polarity at the sensor's resolution.
        labels: ``[n]`` int64.
        attrs: the store's attributes.
        weights: ``None`` (stored at sensor resolution) or the area shares ``(wy [H, Hs], wx [W, Ws])`` of the
            store's resize, for :class:`~evrobust.attacks.event_base.EventFrontEnd`.
    """

    counts: np.ndarray
    labels: np.ndarray
    attrs: dict[str, Any]
    weights: tuple[np.ndarray, np.ndarray] | None = None


def event_inputs(store: Path, n: int | None, raw: str | Path | None = None,
                 data_dir: str | None = None) -> EventInputs:
    """The first ``n`` test samples of an event store at sensor resolution; a one-line
    :class:`UserInputError` for a store that cannot give them.

    A store kept at sensor resolution gives its frames as they are. A resized ``cifar10dvs-emu`` store
    rebuilds them from the CIFAR-10 files it was made from (``raw``, default ``<data dir>/raw/cifar10``;
    :func:`evrobust.preprocess.full_resolution.emulated_full_counts`). Any other resized store is refused.
    """
    from evrobust.datasets.stores import read_split_arrays, split_indices
    from evrobust.preprocess.full_resolution import REBUILDABLE, emulated_full_counts
    from evrobust.preprocess.store import read_attrs

    attrs = read_attrs(store)
    if attrs.get("kind") != "events":
        raise UserInputError(
            f"--threat events and retiming edit event counts; {store} holds static images "
            f"({attrs.get('dataset', '?')}): use --threat frames"
        )
    resized = attrs.get("resize") is not None or int(attrs.get("count_unit", 1)) != 1
    if resized and attrs.get("dataset") not in REBUILDABLE:
        raise UserInputError(
            f"{store} holds no full-resolution counts (resized to {attrs.get('resize')} at preprocessing, "
            "where each event was spread over several pixels); rebuild it without --size to attack events"
        )
    indices = split_indices(store, "test")
    if n is not None:
        indices = indices[:n]
    stored, labels = read_split_arrays(store, indices)
    if not resized:
        return EventInputs(stored, labels.astype(np.int64), attrs)
    from evrobust.preprocess.download import raw_folder
    from evrobust.preprocess.resize import area_weights

    source = Path(raw) if raw is not None else raw_folder("cifar10", data_dir)
    counts = emulated_full_counts(store, indices, source)
    (hs, ws), (h, w) = counts.shape[-2:], stored.shape[-2:]
    return EventInputs(counts, labels.astype(np.int64), attrs, (area_weights(hs, h), area_weights(ws, w)))


def _bin_centres(store: Path, attrs: dict[str, Any], n: int) -> np.ndarray | None:
    """``[n, T]`` float64: the centre time (us) of each frame of the first ``n`` test samples, where the
    store's recordings can be rebuilt (digits-dvs: the deterministic emulator); ``None`` otherwise."""
    if attrs.get("dataset") != "digits-dvs":
        return None
    from evrobust.datasets.stores import split_indices
    from evrobust.preprocess.embedded import digits_dvs_bin_times

    times = digits_dvs_bin_times(split_indices(store, "test")[:n])
    return times.mean(axis=2)


def run_event_attack(run: str | os.PathLike[str], *, threat: str, **options: Any) -> dict[str, Any]:
    """Evaluate a trained run under the event attacks of ``threat`` (see :func:`_run_event_attack`).

    Holds the lock ``<run>/.attack-<threat>.lock`` while it works, as ``evrobust attack`` does for frames.
    """
    if threat not in EVENT_THREATS:
        raise UserInputError(f"unknown event threat {threat!r}; choose one of {', '.join(EVENT_THREATS)}")
    bounded = ("limit", "batch_size", "seed", "max_events", "max_shift", "max_moved")
    check_attack_bounds(**{k: options[k] for k in bounded if options.get(k) is not None})
    if Path(run).is_dir():
        with acquire_lock(Path(run) / f"attack-{threat}", "evrobust attack"):
            return _run_event_attack(run, threat=threat, **options)
    return _run_event_attack(run, threat=threat, **options)


def _run_event_attack(
    run: str | os.PathLike[str],
    *,
    threat: str,
    attacks: str | None = None,
    max_events: int | None = None,
    max_shift: int = DEFAULT_MAX_SHIFT,
    max_moved: int | None = None,
    spec: str | None = None,
    limit: int | None = None,
    batch_size: int = 64,
    device: str = "auto",
    seed: int = 0,
    which: str = "best",
    data_dir: str | None = None,
) -> dict[str, Any]:
    """Run the event attacks; write ``attack-<threat>.json`` and ``.md``; return the JSON document.

    Args:
        run: run directory (``--out`` of ``evrobust train``) of a model trained on an event store.
        threat: ``events`` (insert/delete events) or ``retiming`` (move events in time).
        attacks: comma-separated event attack names (:data:`evrobust.attacks.event_registry.EVENT_ATTACKS`).
        max_events: SDA's budget, events added plus deleted per sample (None: until fooled or out of steps).
        max_shift: retiming's D, the largest shift of an event in bins.
        max_moved: retiming B0's k, events moved per sample (None: the registry's default).
        spec: gradient spec the attacks craft under (None: :data:`DEFAULT_EVENT_SPEC`).
        limit, batch_size, device, seed, which, data_dir: as for the frame attacks.
    """
    names = parse_event_attacks(threat, attacks)
    spec_text = DEFAULT_EVENT_SPEC if spec is None else str(spec)
    built = {
        name: create_event_attack(
            name, seed=seed, spec=spec_text, max_events=max_events, max_shift=max_shift, max_moved=max_moved
        )
        for name in names
    }
    from evrobust.neurons import GradSpec

    GradSpec.parse(spec_text)  # a bad spec is one line before any file is read
    dev = resolve_device(device)
    run = Path(run)
    json_path, md_path, partial_path = result_paths(run, threat)
    for path in (json_path, md_path, partial_path):
        check_write_target(path)
    net, config = load_evaluated_run(run, which, dev, "target")
    store = run_test_store(config, data_dir)
    inputs = event_inputs(store, limit, data_dir=data_dir)
    counts_all, labels_all, attrs = inputs.counts, inputs.labels, inputs.attrs
    n = int(counts_all.shape[0])
    if n == 0:
        raise UserInputError(f"the test split of {store} is empty")
    if n > MAX_LIMIT:
        raise UserInputError(f"the test split of {store} holds {n:,} samples; attack a part with --limit")
    fronts = {
        False: EventFrontEnd(float(attrs["scale"]), int(attrs.get("count_unit", 1)), inputs.weights).to(dev),
        True: EventFrontEnd(float(attrs["scale"]), 1, inputs.weights, binary=True).to(dev),
    }
    models = {binary: CountModel(net, front) for binary, front in fronts.items()}
    from evrobust.datasets import open_split

    dataset = open_split(store, "test")
    _check_front_end(fronts[False], counts_all, dataset, min(n, batch_size))
    from evrobust.preprocess.store_verify import store_digest

    fingerprint = {
        "run": str(run.resolve()),
        "threat": threat,
        "which": which,
        "spec": spec_text,
        "jobs": [["clean", None], *[[name, built[name].describe()] for name in names]],
        "samples": n,
        "batch_size": batch_size,
        "seed": seed,
        "checkpoint_sha256": checkpoint_digest(run, which),
        "store_sha256": store_digest(store),
    }
    state = _load_event_partial(partial_path, fingerprint)
    flags = {key: AttackFlags.from_json(v) for key, v in state["flags"].items()} or {
        key: AttackFlags(key) for key, _ in fingerprint["jobs"]
    }
    changed: dict[str, list[int | None]] = {k: list(v) for k, v in state.get("events_changed", {}).items()}
    shifts: dict[str, list[int | None]] = {k: list(v) for k, v in state.get("max_shift", {}).items()}
    shifts_us: dict[str, list[int | None]] = {k: list(v) for k, v in state.get("max_shift_us", {}).items()}
    centres = _bin_centres(store, attrs, n) if threat == "retiming" else None
    seconds: dict[str, float] = dict(state["seconds"])
    example = state.get("example")
    if state["batches_done"]:
        logger.info("resuming %s from batch %d (%s)", partial_path.name, state["batches_done"], run)
    for b, start in enumerate(range(0, n, batch_size)):
        if b < state["batches_done"]:
            continue
        stop = min(start + batch_size, n)
        counts = torch.from_numpy(counts_all[start:stop].astype(np.float32)).to(dev)
        y = torch.from_numpy(labels_all[start:stop]).to(dev)
        for name in ("clean", *names):
            binary = name != "clean" and EVENT_ATTACKS[name].binary
            model = models[binary]
            clean_ok = predict(model, counts) == y
            if name == "clean":
                flags["clean"].append(clean_ok)
                continue
            t0 = time.perf_counter()
            part = None if centres is None else torch.from_numpy(centres[start:stop])
            got = _attack_batch(built[name], model, counts, y, clean_ok, batch_seed(seed, b), part)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
            flags[name].append(got.robust)
            changed.setdefault(name, []).extend(got.changed)
            if threat == "retiming":
                shifts.setdefault(name, []).extend(got.shift)
                shifts_us.setdefault(name, []).extend(got.shift_us)
            if example is None and got.adv is not None:
                reference = built[name].clean_reference(counts)
                example = _example(name, reference, got.adv, got.rows, got.robust, start, y)
        state = {
            "batches_done": b + 1,
            "flags": {k: f.to_json() for k, f in flags.items()},
            "seconds": seconds,
            "events_changed": changed,
            "max_shift": shifts,
            "max_shift_us": shifts_us,
            "example": example,
        }
        write_text_atomic(partial_path, json.dumps({"fingerprint": fingerprint, **state}))
        logger.info(
            "batch %d/%d: %s",
            b + 1,
            -(-n // batch_size),
            ", ".join(f"{k} {100 * f.accuracy():.1f}%" for k, f in flags.items()),
        )

    result = _document(
        run,
        config,
        threat,
        spec_text,
        names,
        built,
        flags,
        changed,
        (shifts, shifts_us),
        seconds,
        example,
        n,
        seed,
        which,
        test_set_identity(dataset, store, n),
    )
    write_text_atomic(json_path, json.dumps(result, indent=1))
    write_text_atomic(md_path, render_event_markdown(result))
    remove_file(partial_path)
    logger.info("wrote %s and %s", json_path, md_path)
    return result


def _check_front_end(front: EventFrontEnd, counts: np.ndarray, dataset: Any, k: int) -> None:
    """The front end must reproduce the dataset's model input on the clean counts (first ``k`` samples)."""
    x = torch.stack([torch.as_tensor(dataset[i][0]) for i in range(k)]).float()
    with torch.no_grad():
        mine = front(torch.from_numpy(counts[:k].astype(np.float32)).to(front_device(front))).cpu()
    if not torch.allclose(mine, x, atol=1e-6):
        raise AssertionError("the event front end does not reproduce the dataset's input; a bug in evrobust")


def front_device(front: EventFrontEnd) -> torch.device:
    """The device of a front end (its buffers, or the CPU when it has none)."""
    buffers = list(front.buffers())
    return buffers[0].device if buffers else torch.device("cpu")


@dataclass
class BatchOutcome:
    """One event attack on one batch: per row of the batch, ``None`` where the row was not attacked."""

    robust: torch.Tensor  # [B] bool: correct on the clean counts and on the attack's output
    changed: list[int | None]  # events changed (events threat) or moved (retiming)
    shift: list[int | None]  # retiming: the largest shift in bins
    shift_us: list[int | None]  # retiming: the largest shift in microseconds, where the bins' times are known
    adv: torch.Tensor | None  # the attacked rows' outputs
    rows: torch.Tensor  # the attacked rows (clean-correct)


def _attack_batch(
    attack: EventAttack,
    model: CountModel,
    counts: torch.Tensor,
    y: torch.Tensor,
    clean_ok: torch.Tensor,
    seed: int,
    centres: torch.Tensor | None = None,
) -> BatchOutcome:
    """Attack the clean-correct rows of a batch (``centres [B, T]``: the frames' centre times, or None)."""
    rows = torch.nonzero(clean_ok).flatten()
    total = int(counts.shape[0])
    out = BatchOutcome(torch.zeros(total, dtype=torch.bool, device=counts.device), [None] * total,
                       [None] * total, [None] * total, None, rows)
    if rows.numel() == 0:
        return out
    adv = attack(model, counts[rows], y[rows], seed=seed, rows=rows.cpu(), total=total)
    out.adv = adv
    out.robust[rows] = predict(model, adv) == y[rows]
    # changes are counted against the point the attack starts from (binary SDA: the binarised counts)
    reference = attack.clean_reference(counts[rows])
    if attack.threat == "retiming":
        stats = retiming_stats(reference, adv, None if centres is None else centres[rows.cpu()])
        moved = stats.moved.tolist()
        for i, r in enumerate(rows.tolist()):
            out.shift[r] = int(stats.max_shift[i])
            if stats.max_shift_us is not None:
                out.shift_us[r] = int(stats.max_shift_us[i])
    else:
        moved = events_changed(reference, adv).tolist()
    for i, r in enumerate(rows.tolist()):
        out.changed[r] = int(moved[i])
    return out


def _example(
    name: str,
    counts: torch.Tensor,
    adv: torch.Tensor,
    rows: torch.Tensor,
    robust: torch.Tensor,
    start: int,
    y: torch.Tensor,
) -> dict[str, Any] | None:
    """The first sample the attack fooled, as its changed cells ``[t, p, y, x, delta]`` (heatmap data)."""
    for i, r in enumerate(rows.tolist()):
        if not bool(robust[r]):
            diff = (adv[i] - counts[r]).round().long().cpu()
            cells = torch.nonzero(diff)
            changes = [[*map(int, c), int(diff[tuple(c)])] for c in cells[:EXAMPLE_CHANGES]]
            return {
                "attack": name,
                "sample": start + r,
                "label": int(y[r]),
                "shape": list(diff.shape),
                "clean_events": int(counts[r].sum()),
                "changes": changes,
            }
    return None


def _summary(values: list[int | None], robust_flags: torch.Tensor, clean: torch.Tensor) -> dict[str, Any]:
    """Median, quartiles and max of events changed over the samples the attack fooled."""
    fooled = [
        v
        for v, r, c in zip(values, robust_flags.tolist(), clean.tolist(), strict=True)
        if c == 1 and r != 1 and v is not None
    ]
    if not fooled:
        return {"fooled": 0, "median": None, "q1": None, "q3": None, "max": None}
    q1, med, q3 = (float(np.percentile(fooled, q)) for q in (25, 50, 75))
    return {"fooled": len(fooled), "median": med, "q1": q1, "q3": q3, "max": int(max(fooled))}


def _document(
    run: Path,
    config: dict[str, Any],
    threat: str,
    spec: str,
    names: tuple[str, ...],
    built: dict[str, EventAttack],
    flags: dict[str, AttackFlags],
    changed: dict[str, list[int | None]],
    shift_lists: tuple[dict[str, list[int | None]], dict[str, list[int | None]]],
    seconds: dict[str, float],
    example: dict[str, Any] | None,
    n: int,
    seed: int,
    which: str,
    test_set: dict[str, Any],
) -> dict[str, Any]:
    clean = flags["clean"].correct
    entries: list[dict[str, Any]] = [
        {
            "name": "clean",
            "label": "Clean",
            "in_table": True,
            "accuracy": flags["clean"].accuracy(),
            **flag_interval(clean == 1),
            "samples": n,
        }
    ]
    for name in names:
        f = flags[name]
        entry = {
            "name": name,
            "label": EVENT_ATTACKS[name].label,
            "in_table": True,
            "accuracy": f.accuracy(),
            **flag_interval(f.correct == 1),
            "samples": n,
            "seconds": round(seconds.get(name, 0.0), 3),
            "settings": built[name].describe(),
            "budgets": built[name].budgets(),
            "events_changed": changed.get(name, [None] * n),
            "changed_when_fooled": _summary(changed.get(name, [None] * n), f.correct, clean),
        }
        if threat == "retiming":
            shifts, shifts_us = shift_lists
            entry["max_shift"] = shifts.get(name, [None] * n)
            entry["max_shift_us"] = shifts_us.get(name, [None] * n)
        entries.append(entry)
    frames = _frame_reference(run, n, test_set)
    return {
        "format": "evrobust-attack",
        "version": 1,
        "run": str(run),
        "mode": "whitebox",
        "threat": threat,
        "checkpoint": which,
        "dataset": config.get("data", {}).get("dataset", "?"),
        "arch": config.get("model", {}).get("name", "?"),
        "defense": (config.get("defense") or {}).get("name", "?"),
        "spec": spec,
        "budgets": {name: built[name].budgets() for name in names},
        "seed": seed,
        "samples": n,
        "test_set": test_set,
        "attacks": entries,
        "flags": {k: f.to_json() for k, f in flags.items()},
        "example": example,
        "frames_reference": frames,
    }


def _frame_reference(run: Path, n: int, test_set: dict[str, Any]) -> dict[str, Any] | None:
    """The frame-level robustness of the same run on the same samples, where ``attack-whitebox.json`` has it:
    its reliable verdict if it ran the cascade, else the lowest accuracy of its table's attacks (the masking
    checks' extra attacks left out); ``None`` otherwise."""
    doc = read_json_or_warn(
        run / "attack-whitebox.json",
        "attack_result",
        "the frame attack result",
        "the event result is written without the frame comparison",
    )
    if doc is None or doc.get("samples") != n:
        return None
    ident = (doc.get("test_set") or {}).get("labels_sha256")
    if ident is not None and ident != test_set.get("labels_sha256"):
        return None
    reliable = doc.get("reliable") or {}
    if reliable.get("accuracy") is not None:
        return {
            "attack": "reliable",
            "accuracy": reliable["accuracy"],
            "ci95": reliable.get("ci95"),
            "eps": doc.get("eps_text") or doc.get("eps"),
            "converged": reliable.get("converged"),
        }
    scored = [
        a
        for a in doc.get("attacks", [])
        if a.get("name") != "clean" and a.get("in_table", True) and a.get("accuracy") is not None
    ]
    if not scored:
        return None
    worst = min(scored, key=lambda a: a["accuracy"])
    return {
        "attack": worst["name"],
        "accuracy": worst["accuracy"],
        "ci95": worst.get("ci95"),
        "eps": doc.get("eps_text") or doc.get("eps"),
        "converged": None,
    }


def _load_event_partial(path: Path, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The resume state in ``path`` if this very attack wrote it, else an empty one (one warning why)."""
    empty: dict[str, Any] = {"batches_done": 0, "flags": {}, "seconds": {}}
    state = read_json_or_warn(path, "attack_partial", "the partial results", "starting over")
    if state is None:
        return empty
    if state["fingerprint"] != roundtrip(fingerprint):
        logger.warning("the partial results %s were made with other options or content; starting over", path)
        return empty
    covered = min(state["batches_done"] * fingerprint["batch_size"], fingerprint["samples"])
    lists = [*state.get("events_changed", {}).values(), *state.get("max_shift", {}).values(),
             *state.get("max_shift_us", {}).values()]
    if any(len(v) != covered for v in lists):
        logger.warning("the partial results %s do not cover their batches; starting over", path)
        return empty
    return state
