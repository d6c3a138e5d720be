"""AEDAT 2.0 reader/writer on the real recordings in ../shared/data, cross-checked against tonic's parser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evrobust.errors import UserInputError
from evrobust.preprocess.aedat2 import (
    decode_aedat2_payload,
    parse_aedat2_header,
    read_aedat2,
    read_aedat2_header,
    write_aedat2,
)
from evrobust.preprocess.events import EVENT_DTYPE, EventFileError, make_events
from evrobust.preprocess.orientation import (
    CIFAR10DVS_ORIENTATION,
    ORIENTATIONS,
    orient_events,
    oriented_sensor_size,
    unorient_events,
)

# Real recordings, under the real_data fixture's folder.
MNIST = "dvs/aedat2_dvs128/mnist_0_scale04_0001.aedat"
FOAM = "dvs/aedat2_dvs128/foam90.aedat"
HEADER_ONLY = "dvs/aedat2_davis/sample_aedat_header.aedat"
DAVIS = "dvs/aedat2_davis/IMU_rotDisk.aedat"


def _numpy_decode(path: Path, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Independent reference: big-endian (address, timestamp) pairs by plain numpy."""
    raw = np.frombuffer(path.read_bytes(), dtype=">u4", offset=offset).reshape(-1, 2)
    return raw[:, 0].astype(np.int64), raw[:, 1].astype(np.int64)


def _tonic_raw(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """tonic's own AEDAT header + payload parser (its read_dvs_128 wrapper is broken in 1.7.0)."""
    tio = pytest.importorskip("tonic.io")
    version, start, _ = tio.read_aedat_header_from_file(str(path))
    assert version == 2.0
    ev = tio.get_aer_events_from_file(str(path), version, start)
    return ev["address"].astype(np.int64), ev["timeStamp"].astype(np.int64), start


# --- the real files -------------------------------------------------------------------------------------


def test_mnist_dvs_recording_matches_provenance_checks(real_data: Path) -> None:
    ev = read_aedat2(real_data / MNIST)
    assert ev.dtype == EVENT_DTYPE
    assert ev.shape == (15744,)
    assert (ev["x"].min(), ev["x"].max()) == (0, 126)
    assert (ev["y"].min(), ev["y"].max()) == (1, 127)
    assert np.bincount(ev["p"]).tolist() == [7870, 7874]
    assert ev["t"][0] == 0 and ev["t"][-1] == 2_210_588
    assert np.all(np.diff(ev["t"]) >= 0)
    header = read_aedat2_header(real_data / MNIST)
    assert header.version == "2.0" and header.data_offset == 216 and header.chip is None
    assert header.lines[-1] == " created Tue Apr 29 11:36:59 CEST 2008"  # CRLF stripped


@pytest.mark.parametrize("path", [MNIST, FOAM], ids=["mnist-dvs", "foam90-xml-header"])
def test_dvs128_decode_equals_tonic_parser(real_data: Path, path: str) -> None:
    path = real_data / path
    addr, ts, start = _tonic_raw(path)
    assert read_aedat2_header(path).data_offset == start
    ev = read_aedat2(path)
    np.testing.assert_array_equal(ev["t"], ts)
    np.testing.assert_array_equal(ev["x"], (addr & 0xFE) >> 1)
    np.testing.assert_array_equal(ev["y"], (addr & 0x7F00) >> 8)
    np.testing.assert_array_equal(ev["p"], addr & 1)
    # tonic's DVS128 convention names the fields the other way round: its x is our y.
    np.testing.assert_array_equal(ev["y"], (addr >> 8) & 0x7F)


def test_foam90_long_xml_header(real_data: Path) -> None:
    header = read_aedat2_header(real_data / FOAM)
    assert header.data_offset == 4026
    assert header.chip == "ch.unizh.ini.jaer.chip.retina.DVS128"
    assert len(header.lines) == 87
    assert any("<?xml" in line for line in header.lines)
    ev = read_aedat2(real_data / FOAM)
    assert ev.shape == (1575,)
    assert ev["x"].max() <= 127 and ev["y"].max() <= 127
    assert np.all(np.diff(ev["t"]) >= 0)


def test_header_only_file_gives_zero_events(real_data: Path) -> None:
    header = read_aedat2_header(real_data / HEADER_ONLY)
    assert header.data_offset == (real_data / HEADER_ONLY).stat().st_size == 599
    assert header.chip == "eu.seebetter.ini.chips.davis.Davis346red"
    for layout in ("dvs128", "davis"):
        if layout == "dvs128":
            with pytest.raises(EventFileError, match="layout='davis'"):
                read_aedat2(real_data / HEADER_ONLY)
            continue
        ev = read_aedat2((real_data / HEADER_ONLY), layout=layout)
        assert ev.dtype == EVENT_DTYPE and ev.shape == (0,)


def test_davis_layout_on_real_davis240_recording(real_data: Path) -> None:
    header = read_aedat2_header(real_data / DAVIS)
    assert header.data_offset == 175_039
    addr, ts = _numpy_decode((real_data / DAVIS), header.data_offset)
    assert addr.shape == (425_984,)
    dvs = (addr >> 31) == 0
    assert int((~dvs).sum()) == 51_688
    ev = read_aedat2((real_data / DAVIS), layout="davis")
    assert ev.shape == (425_984 - 51_688,)
    np.testing.assert_array_equal(ev["t"], ts[dvs])
    np.testing.assert_array_equal(ev["x"], (addr[dvs] >> 12) & 0x3FF)
    np.testing.assert_array_equal(ev["y"], (addr[dvs] >> 22) & 0x1FF)
    np.testing.assert_array_equal(ev["p"], (addr[dvs] >> 11) & 1)
    assert ev["x"].max() == 239 and ev["y"].max() == 179  # DAVIS240C sensor from the AEChip line
    assert np.all(np.diff(ev["t"]) >= 0)


def test_davis_recording_with_dvs128_layout_is_refused(real_data: Path) -> None:
    with pytest.raises(EventFileError, match=r"IMU_rotDisk\.aedat.*layout='davis'"):
        read_aedat2(real_data / DAVIS)


# --- orientation ----------------------------------------------------------------------------------------


def _one_event_file(tmp_path: Path, address: int, timestamp: int = 7) -> Path:
    path = tmp_path / "one.aedat"
    payload = np.array([address, timestamp], ">u4").tobytes()
    path.write_bytes(b"#!AER-DAT2.0\n# one hand-made event\n" + payload)
    return path


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        ("raw", (3, 5, 1)),
        ("jaer", (127 - 3, 127 - 5, 0)),  # jAER: x = 127 - rx, y up -> row 127 - ry; bit 1 = OFF
        ("spikingjelly", (127 - 5, 127 - 3, 0)),  # spikingjelly: x' = 127 - y, y' = 127 - x, p' = 1 - p
    ],
)
def test_orientation_hand_computed(tmp_path: Path, orientation: str, expected: tuple[int, int, int]) -> None:
    address = (5 << 8) | (3 << 1) | 1  # raw x = 3, raw y = 5, polarity bit 1
    ev = read_aedat2(_one_event_file(tmp_path, address), orientation=orientation)
    assert (int(ev["x"][0]), int(ev["y"][0]), int(ev["p"][0])) == expected
    assert int(ev["t"][0]) == 7


def test_cifar10dvs_default_is_spikingjelly_formula_on_real_file(real_data: Path) -> None:
    assert CIFAR10DVS_ORIENTATION == "spikingjelly"
    raw = read_aedat2(real_data / MNIST)
    sj = read_aedat2((real_data / MNIST), orientation=CIFAR10DVS_ORIENTATION)
    # spikingjelly.datasets.cifar10_dvs._load_origin_data: {"x": 127 - y, "y": 127 - x, "p": 1 - p}
    np.testing.assert_array_equal(sj["x"], 127 - raw["y"])
    np.testing.assert_array_equal(sj["y"], 127 - raw["x"])
    np.testing.assert_array_equal(sj["p"], 1 - raw["p"])
    np.testing.assert_array_equal(sj["t"], raw["t"])


def test_unknown_orientation_and_layout_name_the_choices(real_data: Path) -> None:
    with pytest.raises(UserInputError, match="raw, jaer, spikingjelly"):
        read_aedat2((real_data / MNIST), orientation="upside-down")
    with pytest.raises(UserInputError, match="dvs128, davis"):
        read_aedat2((real_data / MNIST), layout="atis")


# --- writer ---------------------------------------------------------------------------------------------


def test_rewriting_the_real_recording_reproduces_its_payload(real_data: Path, tmp_path: Path) -> None:
    ev = read_aedat2(real_data / MNIST)
    out = write_aedat2(tmp_path / "copy.aedat", ev)
    original = (real_data / MNIST).read_bytes()
    written = out.read_bytes()
    header = parse_aedat2_header(written, out)
    assert written[: len(b"#!AER-DAT2.0\r\n")] == b"#!AER-DAT2.0\r\n"
    assert header.chip == "ch.unizh.ini.jaer.chip.retina.DVS128"
    assert written[header.data_offset :] == original[216:]
    np.testing.assert_array_equal(read_aedat2(out), ev)


@pytest.mark.parametrize("orientation", list(ORIENTATIONS))
@pytest.mark.parametrize(
    ("layout", "sensor"), [("dvs128", None), ("dvs128", (64, 32)), ("davis", (346, 260))]
)
def test_write_read_round_trip(
    tmp_path: Path, orientation: str, layout: str, sensor: tuple[int, int] | None
) -> None:
    rng = np.random.default_rng(3)
    raw_sensor = sensor or (128, 128)
    w, h = oriented_sensor_size(raw_sensor, orientation)
    n = 500
    t = np.sort(rng.integers(0, 2**32, n))
    ev = make_events(t, rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n))
    path = write_aedat2(tmp_path / "rt.aedat", ev, layout=layout, orientation=orientation, sensor=sensor)
    back = read_aedat2(path, layout=layout, orientation=orientation, sensor=sensor)
    np.testing.assert_array_equal(back, ev)
    # byte-identical on a second write: no date in the header
    again = write_aedat2(tmp_path / "rt2.aedat", ev, layout=layout, orientation=orientation, sensor=sensor)
    assert again.read_bytes() == path.read_bytes()


def test_writer_encodes_the_dvs128_address_by_hand(tmp_path: Path) -> None:
    ev = make_events([10, 20], [3, 127], [5, 0], [1, 0])
    path = write_aedat2(tmp_path / "two.aedat", ev)
    data = path.read_bytes()
    payload = np.frombuffer(data, dtype=">u4", offset=parse_aedat2_header(data).data_offset)
    assert payload.tolist() == [(5 << 8) | (3 << 1) | 1, 10, 127 << 1, 20]
    assert data.split(b"\r\n")[-2] == b"#End Of ASCII Header"


def test_writer_rejects_bad_events(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="outside the 128x128"):
        write_aedat2(tmp_path / "x.aedat", make_events([0], [128], [0], [0]))
    with pytest.raises(UserInputError, match="2\\*\\*32"):
        write_aedat2(tmp_path / "x.aedat", make_events([2**32], [0], [0], [0]))
    with pytest.raises(UserInputError, match="polarity"):
        write_aedat2(tmp_path / "x.aedat", make_events([0], [0], [0], [2]))
    with pytest.raises(UserInputError, match="does not fit"):
        write_aedat2(tmp_path / "x.aedat", make_events([0], [0], [0], [0]), sensor=(256, 128))
    assert not list(tmp_path.iterdir())  # nothing half-written


# --- broken files ---------------------------------------------------------------------------------------


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(EventFileError, match="nope.aedat: no such file"):
        read_aedat2(tmp_path / "nope.aedat")
    with pytest.raises(EventFileError, match="is a directory"):
        read_aedat2(tmp_path)


def test_non_aedat_and_other_versions(real_data: Path, tmp_path: Path) -> None:
    path = tmp_path / "f.aedat"
    path.write_bytes(b"hello world\n")
    with pytest.raises(EventFileError, match="not an AEDAT file"):
        read_aedat2(path)
    path.write_bytes(b"#!AER-DAT4.0\r\n" + bytes(64))
    with pytest.raises(EventFileError, match="read_aedat4"):
        read_aedat2(path)
    path.write_bytes(b"#!AER-DAT1.0\r\n" + bytes(16))
    with pytest.raises(EventFileError, match="unsupported AEDAT version '1.0'"):
        read_aedat2(path)
    # the real AEDAT 4 sample is refused by the 2.0 reader with a pointer to the right one
    with pytest.raises(EventFileError, match="read_aedat4"):
        read_aedat2(real_data / "dvs" / "aedat4" / "sample.aedat4")


def test_cut_header_and_truncated_payload(real_data: Path, tmp_path: Path) -> None:
    data = (real_data / MNIST).read_bytes()
    path = tmp_path / "cut.aedat"
    path.write_bytes(data[:100])  # inside the header
    with pytest.raises(EventFileError, match="cut.aedat: header line at byte .* no line end"):
        read_aedat2(path)
    path.write_bytes(data[: 216 + 8 * 10 + 3])
    with pytest.raises(EventFileError, match="83 bytes is not a multiple of 8"):
        read_aedat2(path)
    path.write_bytes(data[: 216 + 8 * 10])  # cut on an event boundary: a valid shorter file
    np.testing.assert_array_equal(read_aedat2(path), read_aedat2(real_data / MNIST)[:10])


def test_special_events_are_dropped_and_out_of_sensor_events_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.aedat"
    pairs = np.array([[0x8000 | (2 << 8), 1], [(2 << 8) | (4 << 1), 2]], dtype=">u4")  # sync event, then DVS
    path.write_bytes(b"#!AER-DAT2.0\n" + pairs.tobytes())
    ev = read_aedat2(path)
    assert ev.shape == (1,) and (int(ev["x"][0]), int(ev["y"][0]), int(ev["t"][0])) == (4, 2, 2)
    with pytest.raises(EventFileError, match="event 1 has an address outside the 64x2"):
        read_aedat2(path, sensor=(64, 2))


def test_decode_payload_directly() -> None:
    payload = np.frombuffer(np.array([(1 << 8) | (2 << 1), 9], ">u4").tobytes(), np.uint8)
    ev = decode_aedat2_payload(payload)
    assert ev.tolist() == [(9, 2, 1, 0)]
    with pytest.raises(EventFileError, match="<bytes>: payload of 7 bytes"):
        decode_aedat2_payload(payload[:7])


@pytest.mark.parametrize("orientation", list(ORIENTATIONS))
def test_orient_events_equals_reading_with_the_orientation(real_data: Path, orientation: str) -> None:
    raw = read_aedat2(real_data / MNIST)
    np.testing.assert_array_equal(
        orient_events(raw, orientation, (128, 128)), read_aedat2((real_data / MNIST), orientation=orientation)
    )


@pytest.mark.parametrize("orientation", list(ORIENTATIONS))
def test_unorient_inverts_orient_on_a_non_square_sensor(orientation: str) -> None:
    rng = np.random.default_rng(11)
    x, y, p = rng.integers(0, 40, 300), rng.integers(0, 25, 300), rng.integers(0, 2, 300)
    raw = make_events(np.arange(300), x, y, p)
    oriented = orient_events(raw, orientation, (40, 25))
    w, h = oriented_sensor_size((40, 25), orientation)
    assert oriented["x"].max() < w and oriented["y"].max() < h
    np.testing.assert_array_equal(unorient_events(oriented, orientation, (40, 25)), raw)
    if orientation == "spikingjelly":  # transposing: a 40 x 25 raw sensor shows as 25 x 40
        assert (w, h) == (25, 40)
        np.testing.assert_array_equal(oriented["x"], 24 - raw["y"])
