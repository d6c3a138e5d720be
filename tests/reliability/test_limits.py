"""Sizes and hyper-parameters are checked against documented limits before anything is allocated or trained.

Cases that would allocate gigabytes on a regression run in a subprocess under ``RLIMIT_AS``.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from reliability_helpers import CLASSES, MNIST_DVS, run_bounded
from typer.testing import CliRunner

from evrobust.errors import UserInputError
from evrobust.pipelines.train.config import MAX_SEED, MAX_T, TrainConfig, check_model_config_limits
from evrobust.preprocess.store import (
    MAX_FRAMES,
    MAX_SAMPLE_ELEMENTS,
    MAX_SIDE,
    attrs_problem,
    check_event_options,
)

INF, NAN = math.inf, math.nan


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("lr", INF, "--lr must be > 0 and <= 10"),
        ("lr", NAN, "--lr must be > 0"),
        ("lr", 1e308, "--lr must be > 0 and <= 10"),
        ("h", INF, "--h must be > 0 and <= 1"),
        ("h", 1e308, "--h must be > 0 and <= 1"),
        ("h", NAN, "--h must be > 0"),
        ("lam", INF, "--lam must be >= 0 and <= 100"),
        ("lam", NAN, "--lam must be >= 0"),
        ("lam", -1e-3, "--lam must be >= 0"),
        ("at_eps", NAN, "--at-eps must be >= 0 and <= 1"),
        ("at_eps", INF, "--at-eps"),
        ("at_step", INF, "--at-step must be > 0 and <= 1"),
        ("at_step", 0.0, "--at-step must be > 0"),
        ("rat_beta", NAN, "--rat-beta"),
        ("weight_decay", INF, "--weight-decay"),
        ("momentum", NAN, "--momentum"),
        ("width", 1e9, "--width must be > 0 and <= 16"),
        ("width", INF, "--width"),
        ("T", 10**9, f"--T must be at most {MAX_T}"),
        ("batch_size", 10**9, "--batch-size must be at most"),
        ("epochs", 10**12, "--epochs must be at most"),
        ("at_steps", 10**9, "--at-steps must be at most"),
        ("seed", -1, f"--seed must be an integer in [0, {MAX_SEED}]"),
        ("seed", 2**64, "--seed must be an integer in"),
        ("workers", 10**6, "--workers must lie in [0, 256]"),
    ],
)
def test_absurd_hyper_parameters_are_refused_up_front(field: str, value: object, needle: str) -> None:
    config = TrainConfig(data="digits", **{field: value})  # type: ignore[arg-type]
    with pytest.raises(UserInputError) as info:
        config.validate()
    assert needle in str(info.value)


def test_limits_admit_the_paper_settings() -> None:
    for defense in ("vanilla", "sr", "at", "sr_star", "rat"):
        config = TrainConfig(data="cifar10", defense=defense, lr=0.1, h=0.01, lam=0.008, at_eps=2 / 255, T=8)
        config.validate()
    TrainConfig(data="x", lr=10.0, h=1.0, lam=100.0, width=16.0, T=MAX_T, seed=MAX_SEED).validate()


def test_train_cli_refuses_inf_lr_before_touching_anything(tmp_path: Path) -> None:
    from evrobust.pipelines.cli.app import app

    out = tmp_path / "run"
    cases = (["--lr", "inf"], ["--defense", "sr", "--h", "inf"], ["--h", "1e308"], ["--seed", str(2**70)])
    for args in cases:
        result = CliRunner().invoke(app, ["train", "--data", "digits", "--out", str(out), *args])
        assert result.exit_code == 2, (args, result.output)
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
        assert not out.exists()


def test_config_json_T_and_width_are_checked_before_building(tmp_path: Path) -> None:
    from evrobust.pipelines.train.run_dir import load_run

    check_model_config_limits({"T": 8, "width": 1.0}, "c")  # the paper's model passes
    for bad, needle in (({"T": 10**9}, "T must be at most 1024"), ({"width": 1e9}, "width must be > 0")):
        with pytest.raises(UserInputError, match=needle):
            check_model_config_limits(bad, "config.json")
    run = tmp_path / "run"
    run.mkdir()
    config = {
        "format": "evrobust-run",
        "format_version": 1,
        "model": {"name": "vgg_small", "num_classes": 10, "in_channels": 1, "T": 10**9},
        "data": {},
    }
    (run / "config.json").write_text(json.dumps(config))
    (run / "checkpoint-best.safetensors").write_bytes(b"")
    with pytest.raises(UserInputError, match="config.json: T must be at most 1024"):
        load_run(run)


def test_analysis_bins_are_bounded() -> None:
    from evrobust.pipelines.analyze import _resolve_options

    assert _resolve_options("distribution", {"bins": 101})["bins"] == 101
    with pytest.raises(UserInputError, match="bins must be at most 1000000"):
        _resolve_options("distribution", {"bins": 10**12})


# ----------------------------------------------------------------------------- event stores
@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"frames": 10**9}, f"--frames must be an integer in [1, {MAX_FRAMES}]"),
        ({"size": 10**6}, f"--size must be an integer in [1, {MAX_SIDE}]"),
        ({"frames": 1024, "size": 1024}, f"over the {MAX_SAMPLE_ELEMENTS}"),
        ({"scale": INF}, "--scale must be a finite number"),
        ({"scale": NAN}, "--scale must be"),
        ({"scale": 1e300}, "--scale must be a finite number"),
    ],
)
def test_preprocess_sizes_fail_before_allocating(
    real_data: Path, tmp_path: Path, kwargs: dict, needle: str
) -> None:
    # Before the fix --size 1000000 built a 10^6 x 128 resize matrix and ran for minutes at 4-6 GB.
    raw = tmp_path / "raw"
    for name in CLASSES:
        (raw / name).mkdir(parents=True)
        shutil.copyfile(real_data / MNIST_DVS, raw / name / "a.aedat")
    args = {"frames": 10, "size": 48, "scale": None, **kwargs}
    code = (
        "import json\nfrom math import inf, nan\nfrom evrobust.errors import UserInputError\n"
        "from evrobust.pipelines.preprocess import preprocess_cifar10dvs\n"
        f"try:\n    preprocess_cifar10dvs({str(raw)!r}, out={str(tmp_path / 's.zarr')!r}, **{args!r})\n"
        "    print(json.dumps({'ok': True}))\n"
        "except UserInputError as exc:\n    print(json.dumps({'error': str(exc)}))\n"
    )
    proc = run_bounded(code, tmp_path, address_space=2 << 30, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert needle in result.get("error", ""), result
    assert not (tmp_path / "s.zarr").exists()  # refused before a store was created


def test_writer_refuses_what_the_reader_rejects() -> None:
    # Every value the writer's check refuses is also one the reader's attribute check rejects, and the
    # largest value the writer accepts is one the reader accepts.
    for frames, size, scale in ((MAX_FRAMES + 1, None, None), (4, MAX_SIDE + 1, None), (4, 48, INF)):
        with pytest.raises(UserInputError):
            check_event_options(frames, size, None, scale)
        attrs = {"frames": frames, "resize": size, "scale_request": scale, "classes": ["a"]}
        assert attrs_problem(attrs) is not None, attrs
    check_event_options(MAX_FRAMES, 64, (128, 128), 1e9)
    largest = {"frames": MAX_FRAMES, "resize": 64, "scale_request": 1e9, "classes": ["a"]}
    assert attrs_problem(largest) is None


def test_create_store_refuses_an_unreadable_build(tmp_path: Path) -> None:
    import numpy as np

    from evrobust.preprocess.store import create_store

    common = dict(
        dataset="x",
        labels=np.zeros(2, np.int64),
        classes=["a"],
        splits={"s": {"train": [0], "test": [1]}},
        default_split="s",
        split_rule="r",
        sources=["a", "b"],
    )
    with pytest.raises(UserInputError, match="--scale must be a finite number"):
        create_store(tmp_path / "e.zarr", kind="events", sample_shape=(2, 2, 4, 4), scale=INF, **common)
    with pytest.raises(UserInputError, match="sample_shape"):
        create_store(tmp_path / "i.zarr", kind="images", sample_shape=(3, 1 << 20, 1 << 20), **common)
    assert not (tmp_path / "e.zarr").exists() and not (tmp_path / "i.zarr").exists()


def test_plain_event_file_is_read_bounded(tmp_path: Path) -> None:
    # A sparse 1.2 GB .aedat in a class folder: refused by its size, in bounded memory (it used to be read
    # whole, peaking at 3.4 GB).
    big = tmp_path / "raw" / "airplane" / "big.aedat"
    big.parent.mkdir(parents=True)
    with big.open("wb") as fh:
        fh.write(b"#!AER-DAT2.0\r\n")
        fh.truncate(1_200_000_000)
    code = (
        "import json, resource\nfrom evrobust.errors import UserInputError\n"
        "from evrobust.preprocess.sources import read_event_file, read_source_bytes\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "out = []\n"
        f"for call in (lambda: read_event_file({str(big)!r}),"
        f" lambda: read_source_bytes({str(tmp_path / 'raw')!r}, 'airplane/big.aedat')):\n"
        "    try:\n        call(); out.append('ok')\n"
        "    except UserInputError as exc:\n        out.append(str(exc))\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base\n"
        "print(json.dumps({'errors': out, 'rss_mb': rss}))\n"
    )
    proc = run_bounded(code, tmp_path, address_space=1 << 30, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all("1200000000 bytes, over the 1073741824 allowed" in e for e in result["errors"]), result
    assert result["rss_mb"] < 100, result  # growth of the peak over the imports


def test_plain_event_file_within_the_limit_reads_exactly(real_data: Path, tmp_path: Path) -> None:
    from evrobust.preprocess.sources import read_event_file

    data = (real_data / MNIST_DVS).read_bytes()
    assert read_event_file(real_data / MNIST_DVS) == data
    with pytest.raises(UserInputError, match="over the 1000 allowed"):
        read_event_file(real_data / MNIST_DVS, max_bytes=1000)
    with pytest.raises(UserInputError, match="directory"):
        read_event_file(tmp_path)
