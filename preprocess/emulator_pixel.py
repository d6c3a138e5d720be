"""The pixel half of the CIFAR10-DVS recording emulator: a DVS pixel as v2e models it, as one Numba kernel.

The model follows v2e (Hu, Liu and Delbruck, "v2e: From Video Frames to Realistic DVS Events", CVPR
Workshops 2021) and keeps its parameter names (``v2ecore/emulator.py``, ``EventEmulator``); the code is
our own. Per pixel ``i``:

* **Photoreceptor.** The pixel sees the log luminance ``L(t)`` of :mod:`evrobust.preprocess.emulator_display`,
  piecewise constant between screen refreshes, through a first-order low-pass filter of corner frequency
  ``cutoff_hz`` (v2e's ``cutoff_hz``; 0 = infinitely fast): after a refresh at ``t_k`` the filtered value is
  ``Lf(t) = L_k + (Lf(t_k) - L_k) * exp(-(t - t_k) / tau)``, ``tau = 1 / (2 pi cutoff_hz)``. (v2e also lets
  the corner fall in dim light; here it is the same for every pixel.) Threshold crossings of this curve are
  solved in closed form, so event times are exact, not tied to a simulation time step.
* **Thresholds.** The pixel memorises a level ``ref``. It emits an ON event (p = 1) when
  ``Lf - ref >= C_on[i]`` and an OFF event (p = 0) when ``Lf - ref <= -C_off[i]``; each event moves ``ref``
  by that threshold towards ``Lf`` (so a large change gives a burst of events, as in v2e).
  ``C_on ~ N(pos_thres, sigma_thres)``, ``C_off ~ N(neg_thres, sigma_thres)`` per pixel (absolute standard
  deviation in log units, v2e's ``sigma_thres``), floored at 0.01.
* **Refractory period.** After any event the pixel is blind for ``refractory_period_s``: nothing it would
  emit before then is emitted; a crossing still pending when the period ends fires at that moment.
* **Leak events.** Junction leakage lowers ``ref`` steadily at ``leak_rate_hz[i] * C_on[i]`` log units per
  second, so a pixel looking at a static scene emits ON events at ``leak_rate_hz[i]`` per second
  (``leak_rate_hz * (1 + leak_jitter_fraction * z)``, v2e's names). The leak is applied once per refresh
  interval (as v2e applies it once per frame); an event it causes is stamped where the drift alone would
  have crossed the threshold. ``ref`` starts at ``Lf(0) - u * C_on`` with ``u ~ U(0, 1)`` per pixel: the
  leak's steady state, so leak events do not all fire together.
* **Shot noise.** Poisson events at ``shot_noise_rate_hz[i]`` per pixel per second, ON or OFF with equal
  probability (v2e's ``shot_noise_rate_hz``; the per-pixel rate varies log-normally by
  ``noise_rate_cov_decades``, normalised so its mean is the set rate). A noise event is a pixel event:
  it resets the pixel (``ref := Lf``) and starts a refractory period; one that falls inside a refractory
  period is lost.

All randomness is drawn from ``numpy.random.default_rng(seed)`` before the kernel runs, so equal inputs and
seed give bit-identical events. Events are returned sorted by time; ties keep the kernel's order (refresh
interval, then pixel index ``y * W + x``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .events import EVENT_DTYPE

__all__ = ["PixelNoise", "draw_pixel_state", "pixel_events"]

THRESHOLD_FLOOR = 0.01  # log units; a non-positive threshold would fire endlessly


class PixelNoise:
    """The per-pixel random draws of one recording (thresholds, leak, shot noise), from one seed.

    Attributes:
        c_on, c_off: ``[P]`` float64 ON / OFF thresholds (log units).
        leak: ``[P]`` float64 leak drift of ``ref`` in log units per microsecond (>= 0).
        phase: ``[P]`` float64 initial leak phase ``u`` in [0, 1).
        shot_ptr: ``[P + 1]`` int64 CSR offsets into ``shot_t`` / ``shot_p`` per pixel.
        shot_t: float64 shot-noise times in microseconds, ascending within each pixel.
        shot_p: int8 shot-noise polarities.
    """

    def __init__(
        self,
        c_on: np.ndarray,
        c_off: np.ndarray,
        leak: np.ndarray,
        phase: np.ndarray,
        shot_ptr: np.ndarray,
        shot_t: np.ndarray,
        shot_p: np.ndarray,
    ) -> None:
        self.c_on, self.c_off, self.leak, self.phase = c_on, c_off, leak, phase
        self.shot_ptr, self.shot_t, self.shot_p = shot_ptr, shot_t, shot_p


def draw_pixel_state(
    n_pixels: int,
    duration_us: float,
    *,
    pos_thres: float,
    neg_thres: float,
    sigma_thres: float,
    leak_rate_hz: float,
    leak_jitter_fraction: float,
    shot_noise_rate_hz: float,
    noise_rate_cov_decades: float,
    seed: int,
) -> PixelNoise:
    """Draw every random quantity of one recording from ``default_rng(seed)``, in a fixed order."""
    rng = np.random.default_rng(seed)
    c_on = np.maximum(pos_thres + sigma_thres * rng.standard_normal(n_pixels), THRESHOLD_FLOOR)
    c_off = np.maximum(neg_thres + sigma_thres * rng.standard_normal(n_pixels), THRESHOLD_FLOOR)
    leak_hz = np.maximum(leak_rate_hz * (1.0 + leak_jitter_fraction * rng.standard_normal(n_pixels)), 0.0)
    phase = rng.random(n_pixels)
    # log-normal spread of the shot-noise rate, divided by its mean so the average rate is the set one
    spread = noise_rate_cov_decades * math.log(10.0)
    shot_hz = shot_noise_rate_hz * np.exp(spread * rng.standard_normal(n_pixels) - spread * spread / 2)
    counts = rng.poisson(shot_hz * duration_us * 1e-6)
    total = int(counts.sum())
    times = rng.random(total) * duration_us
    pols = (rng.random(total) < 0.5).astype(np.int8)
    pix = np.repeat(np.arange(n_pixels), counts)
    order = np.lexsort((times, pix))
    ptr = np.zeros(n_pixels + 1, np.int64)
    np.cumsum(counts, out=ptr[1:])
    return PixelNoise(c_on, c_off, leak_hz * c_on * 1e-6, phase, ptr, times[order], pols[order])


@njit(cache=True, nogil=True, inline="always")
def _emit(n: int, cap: int, t: float, pixel: int, pol: int, out_t: np.ndarray, out_i: np.ndarray,
          out_p: np.ndarray) -> int:
    if n < cap:
        out_t[n] = np.int64(math.floor(t + 0.5))
        out_i[n] = pixel
        out_p[n] = pol
    return n + 1


@njit(cache=True, nogil=True)
def _pixel_kernel(
    logs: np.ndarray,
    t_frames: np.ndarray,
    t_end: float,
    tau: float,
    refractory: float,
    c_on: np.ndarray,
    c_off: np.ndarray,
    leak: np.ndarray,
    phase: np.ndarray,
    shot_ptr: np.ndarray,
    shot_t: np.ndarray,
    shot_p: np.ndarray,
    out_t: np.ndarray,
    out_i: np.ndarray,
    out_p: np.ndarray,
) -> int:
    """Run every pixel through every refresh interval; returns the event count (written up to capacity).

    ``logs`` ``[K, P]`` log luminance per refresh, ``t_frames`` ``[K]`` refresh times (us), ``t_end`` the
    end of the last interval (us), ``tau`` the photoreceptor time constant (us, 0 = instantaneous),
    ``refractory`` (us). Events come out refresh interval by interval, each pixel's in time order.
    """
    n_frames, n_pix = logs.shape
    cap = out_t.shape[0]
    n = 0
    # Interval by interval (pixels inside), so events come out nearly in time order and the counting sort
    # that follows writes almost sequentially; each pixel's own events are still in time order.
    lf_all = logs[0].copy()  # at rest before the recording starts: the filter has settled
    ref_all = lf_all - phase * c_on
    ready_all = np.full(n_pix, -1e300)
    si_all = shot_ptr[:-1].copy()
    for k in range(n_frames):
        t0 = t_frames[k]
        t1 = t_frames[k + 1] if k + 1 < n_frames else t_end
        decay_end = math.exp(-(t1 - t0) / tau) if tau > 0.0 else 0.0
        for i in range(n_pix):
            con = c_on[i]
            coff = c_off[i]
            lam = leak[i]
            lf = lf_all[i]
            ref = ref_all[i]
            ready = ready_all[i]
            si = si_all[i]
            se = shot_ptr[i + 1]
            target = logs[k, i]
            amp = lf - target if tau > 0.0 else 0.0  # Lf(t) = target + amp * exp(-(t - t0) / tau)
            t = t0
            while True:
                s = max(t, ready)
                t_sig = math.inf
                on = False
                if s < t1:
                    lf_s = target + amp * math.exp(-(s - t0) / tau) if amp != 0.0 else target
                    d = lf_s - ref
                    if d >= con:
                        t_sig, on = s, True
                    elif d <= -coff:
                        t_sig, on = s, False
                    elif amp < 0.0 and target - ref > con:  # rising towards the target past ref + C_on
                        t_sig = t0 + tau * math.log(amp / (ref + con - target))
                        on = True
                    elif amp > 0.0 and target - ref < -coff:  # falling below ref - C_off
                        t_sig = t0 + tau * math.log(amp / (ref - coff - target))
                        on = False
                    t_sig = max(t_sig, s)
                    if t_sig >= t1:
                        t_sig = math.inf
                t_shot = shot_t[si] if si < se else math.inf
                if t_shot < t1 and t_shot <= t_sig:
                    si += 1
                    t = max(t, t_shot)
                    if t_shot >= ready:  # a noise event inside the refractory period is lost
                        n = _emit(n, cap, t_shot, i, shot_p[si - 1], out_t, out_i, out_p)
                        ref = target + amp * math.exp(-(t_shot - t0) / tau) if amp != 0.0 else target
                        ready = t_shot + refractory
                    continue
                if t_sig == math.inf:
                    break
                n = _emit(n, cap, t_sig, i, 1 if on else 0, out_t, out_i, out_p)
                ref += con if on else -coff
                ready = t_sig + refractory
                t = t_sig
            lf = target + amp * decay_end
            if lam > 0.0:
                ref -= lam * (t1 - t0)
                d = lf - ref
                while d >= con:  # leak events: where the drift alone crossed, after any refractory period
                    te = max(t1 - (d - con) / lam, ready, t0)
                    n = _emit(n, cap, te, i, 1, out_t, out_i, out_p)
                    ref += con
                    d -= con
                    ready = te + refractory
            lf_all[i] = lf
            ref_all[i] = ref
            ready_all[i] = ready
            si_all[i] = si
    return n


@njit(cache=True, nogil=True)
def _time_sort(t: np.ndarray, pix: np.ndarray, pol: np.ndarray, width: int, out: np.ndarray) -> None:
    """Stable counting sort by ``t`` (us, >= 0) into ``out`` (EVENT_DTYPE); ties keep the input order."""
    n = t.shape[0]
    if n == 0:
        return
    t_max = 0
    for j in range(n):
        t_max = max(t_max, t[j])
    start = np.zeros(t_max + 2, np.int64)
    for j in range(n):
        start[t[j] + 1] += 1
    for v in range(1, t_max + 2):
        start[v] += start[v - 1]
    # a stable placement: ties keep the kernel's order, which is pixel order within an interval
    for j in range(n):
        k = start[t[j]]
        start[t[j]] += 1
        e = out[k]
        e.t = t[j]
        e.x = pix[j] % width
        e.y = pix[j] // width
        e.p = pol[j]


def pixel_events(
    logs: np.ndarray,
    t_frames_us: np.ndarray,
    t_end_us: float,
    noise: PixelNoise,
    *,
    cutoff_hz: float,
    refractory_period_s: float,
    width: int,
) -> np.ndarray:
    """Events of the pixel model for piecewise-constant log luminance (see the module docstring).

    Args:
        logs: ``[K, H, W]`` (or ``[K, P]``) float64 log luminance, frame ``k`` shown from ``t_frames_us[k]``.
        t_frames_us: ``[K]`` float64 ascending refresh times in microseconds (the first is the start, >= 0).
        t_end_us: the end of the last frame (us).
        noise: the per-pixel draws (:func:`draw_pixel_state`) for ``P = H * W`` pixels.
        cutoff_hz: photoreceptor corner frequency (0 = instantaneous).
        refractory_period_s: refractory period in seconds, applied in whole microseconds.
        width: sensor width W (pixel index ``y * W + x``).

    Returns:
        ``[N]`` EVENT_DTYPE events sorted by time (ties: interval, then pixel); ``t`` in integer us.
    """
    flat = np.ascontiguousarray(logs, dtype=np.float64).reshape(logs.shape[0], -1)
    tau = 1e6 / (2.0 * math.pi * cutoff_hz) if cutoff_hz > 0 else 0.0
    refractory = float(round(refractory_period_s * 1e6))  # whole us: spacing survives rounding to us
    t_frames = np.ascontiguousarray(t_frames_us, dtype=np.float64)
    args = (flat, t_frames, float(t_end_us), tau, refractory, noise.c_on, noise.c_off, noise.leak,
            noise.phase, noise.shot_ptr, noise.shot_t, noise.shot_p)
    cap = max(1 << 16, 40 * flat.shape[1])  # 40 events per pixel: rarely rerun
    while True:
        out_t = np.empty(cap, np.int64)
        out_i = np.empty(cap, np.int64)
        out_p = np.empty(cap, np.int8)
        n = _pixel_kernel(*args, out_t, out_i, out_p)
        if n <= cap:
            break
        cap = n  # the kernel is deterministic: the rerun writes the same events, now all of them
    events = np.empty(n, EVENT_DTYPE)
    _time_sort(out_t[:n], out_i[:n], out_p[:n], int(width), events)
    return events
