"""An emulated CIFAR10-DVS recording: a CIFAR-10 image -> the events a DVS128 would have recorded.

:func:`emulate_recording` chains the display model (:mod:`evrobust.preprocess.emulator_display`: diamond
motion, 60 Hz refresh, bicubic 512x512 upscaling, imaging onto the 128x128 sensor, LCD gamma) and the v2e
pixel model (:mod:`evrobust.preprocess.emulator_pixel`: log luminance, photoreceptor low-pass, ON/OFF
thresholds with pixel-to-pixel spread, refractory period, leak and shot-noise events). All parameters live
in :class:`RecordingParams`; its defaults were chosen so that the emulated CIFAR-10 subset matches the real
recordings' published statistics (about 205,000 events and 1.30 s per recording; see
``docs/emulated-cifar10dvs.md`` and ``scripts/emulator_stats.py``). Everything from it is "emulated" data.

Events are in image orientation (x = column, y = row from the top-left, p = 1 ON), the orientation
:data:`~evrobust.preprocess.orientation.CIFAR10DVS_ORIENTATION` reads the release files into, so writing
them with that orientation (:func:`write_recordings`) and reading them back returns them exactly.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evrobust.errors import UserInputError

from .emulator import to_gray
from .emulator_display import diamond_offsets, render_log_frames
from .emulator_pixel import draw_pixel_state, pixel_events
from .events import check_sensor_size

__all__ = ["RecordingParams", "emulate_recording", "release_names", "write_recordings"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordingParams:
    """Every setting of the recording emulator (units in the names; v2e's names for the pixel).

    Motion and display:
        n_loops: times the diamond path is travelled.
        step_px: distance of the diamond's vertices from the rest position (screen pixels).
        speed_px_s: speed along the path (screen pixels per second).
        refresh_hz: screen refresh rate; the picture moves in whole-pixel steps at this rate.
        image_size_px: sensor pixels covered by the 512x512 screen image (128: fills the sensor).
        background: screen grey level around the image, in [0, 1].
        display_gamma: LCD gamma (luminance = v ** gamma).
        black_level: luminance of a black screen relative to white (> 0: backlight and room light).
        sensor_size: ``(W, H)`` sensor pixels.

    Pixel (v2e ``EventEmulator`` names):
        pos_thres, neg_thres: mean ON / OFF thresholds (log units).
        sigma_thres: pixel-to-pixel standard deviation of both thresholds (log units).
        cutoff_hz: photoreceptor corner frequency (0 = instantaneous).
        refractory_period_s: refractory period after each event (seconds).
        leak_rate_hz, leak_jitter_fraction: leak-event rate per pixel and its relative spread.
        shot_noise_rate_hz, noise_rate_cov_decades: shot-noise rate per pixel and its log10 spread.
    """

    n_loops: int = 4
    step_px: float = 8.0
    speed_px_s: float = 140.0
    refresh_hz: float = 60.0
    image_size_px: float = 128.0
    background: float = 0.0
    display_gamma: float = 2.2
    black_level: float = 0.035
    sensor_size: tuple[int, int] = (128, 128)
    pos_thres: float = 0.2
    neg_thres: float = 0.2
    sigma_thres: float = 0.03
    cutoff_hz: float = 100.0
    refractory_period_s: float = 0.0005
    leak_rate_hz: float = 0.1
    leak_jitter_fraction: float = 0.1
    shot_noise_rate_hz: float = 1.0
    noise_rate_cov_decades: float = 0.1

    def __post_init__(self) -> None:
        w, h = check_sensor_size(tuple(self.sensor_size), "sensor_size")
        object.__setattr__(self, "sensor_size", (w, h))
        finite = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "sensor_size"}
        for name, value in finite.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise UserInputError(f"emulator setting {name} must be a finite number, got {value!r}")
        checks = [
            (isinstance(self.n_loops, int) and self.n_loops >= 1, "n_loops must be an integer >= 1"),
            (self.step_px >= 0, "step_px must be >= 0"),
            (self.speed_px_s > 0, "speed_px_s must be > 0"),
            (self.refresh_hz > 0, "refresh_hz must be > 0"),
            (self.image_size_px > 0, "image_size_px must be > 0"),
            (0 <= self.background <= 1, "background must lie in [0, 1]"),
            (self.display_gamma > 0, "display_gamma must be > 0"),
            (0 < self.black_level < 1, "black_level must lie in (0, 1)"),
            (self.pos_thres > 0 and self.neg_thres > 0, "pos_thres and neg_thres must be > 0"),
            (self.sigma_thres >= 0, "sigma_thres must be >= 0"),
            (self.cutoff_hz >= 0, "cutoff_hz must be >= 0"),
            (self.refractory_period_s >= 0, "refractory_period_s must be >= 0"),
            (self.leak_rate_hz >= 0 and self.leak_jitter_fraction >= 0, "leak settings must be >= 0"),
            (
                self.shot_noise_rate_hz >= 0 and self.noise_rate_cov_decades >= 0,
                "shot-noise settings must be >= 0",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UserInputError(f"emulator: {message}")
        if self.duration_s() > 4000:  # AEDAT 2.0 timestamps are 32-bit microseconds
            raise UserInputError(f"emulator: a {self.duration_s():.0f} s recording is too long (max 4000 s)")

    def duration_s(self) -> float:
        """The recording's length in seconds (whole refreshes)."""
        return _n_refreshes(self) / self.refresh_hz

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (recorded in store attrs)."""
        out = dataclasses.asdict(self)
        out["sensor_size"] = list(self.sensor_size)
        return out

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> RecordingParams:
        """Settings -> params; an unknown name is a UserInputError naming the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise UserInputError(
                f"unknown emulator setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values = dict(settings)
        if "sensor_size" in values:
            values["sensor_size"] = tuple(values["sensor_size"])
        return cls(**values)


def _n_refreshes(p: RecordingParams) -> int:
    perimeter = 4.0 * math.sqrt(2.0) * p.step_px
    return max(1, round(p.n_loops * perimeter / p.speed_px_s * p.refresh_hz))


def emulate_recording(image: np.ndarray, params: RecordingParams | None = None, seed: int = 0) -> np.ndarray:
    """Emulate the CIFAR10-DVS recording of one image.

    Args:
        image: uint8 ``[H, W]``, ``[1, H, W]`` or ``[3, H, W]`` (a CIFAR-10 image is ``[3, 32, 32]``).
        params: the settings (default :class:`RecordingParams`()).
        seed: seeds every random draw of this recording (thresholds, leak, shot noise); equal image,
            params and seed give bit-identical events.

    Returns:
        ``[N]`` :data:`~evrobust.preprocess.events.EVENT_DTYPE` events sorted by time, ``t`` in integer
        microseconds from 0 (the first refresh), on the ``params.sensor_size`` sensor, image orientation.
    """
    p = params or RecordingParams()
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise UserInputError(f"emulator: seed must be a non-negative integer, got {seed!r}")
    gray = to_gray(image)
    offsets, duration_s = diamond_offsets(p.n_loops, p.step_px, p.speed_px_s, p.refresh_hz)
    logs = render_log_frames(
        gray,
        offsets,
        p.sensor_size,
        image_size_px=p.image_size_px,
        background=p.background,
        display_gamma=p.display_gamma,
        black_level=p.black_level,
    )
    w, h = p.sensor_size
    t_end = duration_s * 1e6
    noise = draw_pixel_state(
        w * h,
        t_end,
        pos_thres=p.pos_thres,
        neg_thres=p.neg_thres,
        sigma_thres=p.sigma_thres,
        leak_rate_hz=p.leak_rate_hz,
        leak_jitter_fraction=p.leak_jitter_fraction,
        shot_noise_rate_hz=p.shot_noise_rate_hz,
        noise_rate_cov_decades=p.noise_rate_cov_decades,
        seed=int(seed),
    )
    t_frames = np.arange(offsets.shape[0]) * (1e6 / p.refresh_hz)
    return pixel_events(
        logs, t_frames, t_end, noise, cutoff_hz=p.cutoff_hz, refractory_period_s=p.refractory_period_s,
        width=w,
    )


def release_names(
    labels: Sequence[int] | np.ndarray, class_names: Sequence[str], prefix: str = "cifar10_"
) -> list[str]:
    """The original release's relative file names: ``<class>/<prefix><class>_<i>.aedat``, ``i`` per class.

    ``i`` counts from 0 within each class in input order (``airplane/cifar10_airplane_0.aedat``, ...).
    """
    counters: dict[int, int] = {}
    names = []
    for label in np.asarray(labels).reshape(-1).tolist():
        i = counters.get(int(label), 0)
        counters[int(label)] = i + 1
        c = class_names[int(label)]
        names.append(f"{c}/{prefix}{c}_{i}.aedat")
    return names


def write_recordings(
    root: str | Path,
    names: Sequence[str],
    events: Sequence[np.ndarray],
    sensor_size: tuple[int, int] = (128, 128),
) -> list[Path]:
    """Write emulated events as AEDAT 2.0 DVS128 files ``<root>/<name>`` in the release layout.

    The events (image orientation) are mapped to raw DVS128 addresses by
    :data:`~evrobust.preprocess.orientation.CIFAR10DVS_ORIENTATION`, so
    ``read_aedat2(path, orientation=CIFAR10DVS_ORIENTATION)`` returns them exactly. Each file is written
    atomically (temporary name, then rename).
    """
    from .aedat2 import write_aedat2
    from .orientation import CIFAR10DVS_ORIENTATION, orientation_flags

    w, h = check_sensor_size(sensor_size, "sensor_size")
    raw_sensor = (h, w) if orientation_flags(CIFAR10DVS_ORIENTATION).swap_xy else (w, h)
    root = Path(root)
    paths = []
    for name, ev in zip(names, events, strict=True):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_aedat2(
            path, ev, layout="dvs128", orientation=CIFAR10DVS_ORIENTATION, sensor=raw_sensor,
            header_lines=["evrobust: EMULATED recording (cifar10dvs-emu), not a real DVS recording"],
        )
        paths.append(path)
    return paths
