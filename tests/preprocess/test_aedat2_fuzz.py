"""Fuzzing the AEDAT 2.0 reader: random bytes and cut real files let only EventFileError escape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evrobust.preprocess.aedat2 import read_aedat2
from evrobust.preprocess.events import EVENT_DTYPE, EventFileError

# Under the real_data fixture's folder.
MNIST = "dvs/aedat2_dvs128/mnist_0_scale04_0001.aedat"
FOAM = "dvs/aedat2_dvs128/foam90.aedat"

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PREFIXES = [b"", b"#", b"#!AER-DAT2.0\n", b"#!AER-DAT2.0\r\n# x\r\n", b"#!AER-DAT\n", b"#!AER-DAT2.0\n#"]


def _read_or_file_error(path: Path, layout: str) -> None:
    try:
        ev = read_aedat2(path, layout=layout)
    except EventFileError as exc:
        assert str(path) in str(exc)
        return
    # whatever decoded is a well-formed event array on the sensor
    assert ev.dtype == EVENT_DTYPE
    limit = (128, 128) if layout == "dvs128" else (1024, 512)
    assert np.all((ev["x"] >= 0) & (ev["x"] < limit[0]) & (ev["y"] >= 0) & (ev["y"] < limit[1]))
    assert np.all((ev["p"] == 0) | (ev["p"] == 1))


@FUZZ
@given(
    prefix=st.sampled_from(PREFIXES),
    body=st.binary(max_size=300),
    layout=st.sampled_from(["dvs128", "davis"]),
)
def test_random_bytes(tmp_path: Path, prefix: bytes, body: bytes, layout: str) -> None:
    path = tmp_path / "fuzz.aedat"
    path.write_bytes(prefix + body)
    _read_or_file_error(path, layout)


@FUZZ
@given(which=st.sampled_from([MNIST, FOAM]), frac=st.floats(0.0, 1.0))
def test_cut_real_files(real_data: Path, tmp_path: Path, which: str, frac: float) -> None:
    data = (real_data / which).read_bytes()
    path = tmp_path / "cut.aedat"
    path.write_bytes(data[: int(frac * len(data))])
    _read_or_file_error(path, "dvs128")


@FUZZ
@given(seed=st.integers(0, 2**32 - 1), n_flips=st.integers(1, 20))
def test_bit_flips_in_a_real_file(real_data: Path, tmp_path: Path, seed: int, n_flips: int) -> None:
    data = bytearray((real_data / FOAM).read_bytes())
    rng = np.random.default_rng(seed)
    for pos in rng.integers(0, len(data), n_flips):
        data[pos] ^= 1 << int(rng.integers(0, 8))
    path = tmp_path / "flipped.aedat"
    path.write_bytes(bytes(data))
    _read_or_file_error(path, "dvs128")
