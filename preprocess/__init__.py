"""evrobust.preprocess: event/image data -> zarr stores, with numpy, numba, zarr and dask (never torch).

Installed from the top-level ``preprocess/`` folder under the ``evrobust.`` prefix. The public names below
are re-exported lazily (PEP 562), so ``import evrobust.preprocess.store`` does not pay for numba or dask.

* events and readers: :data:`EVENT_DTYPE`, :func:`read_aedat2`, :func:`write_aedat2`, :func:`read_aedat4`
* kernels: :func:`events_to_frames`, :func:`resize_frames`, :func:`emulate_events`
* stores: :func:`create_store`, :func:`write_sample`, :func:`finalize_store`, :func:`verify_store`
* building: :func:`write_event_store`, :func:`write_image_store`, :func:`run_tasks`
* raw sources: :func:`scan_event_dir`, :func:`read_cifar10`, :func:`read_cifar100`, :func:`read_digits`
"""

from __future__ import annotations

from evrobust.preprocess.lazy_exports import lazy_exports

_EXPORTS: dict[str, tuple[str, ...]] = {
    "events": (
        "EVENT_DTYPE",
        "EventFileError",
        "as_events",
        "check_sensor_size",
        "make_events",
        "validate_events",
    ),
    "aedat2": (
        "AEDAT2_LAYOUTS",
        "Aedat2Header",
        "decode_aedat2_payload",
        "parse_aedat2_header",
        "read_aedat2",
        "read_aedat2_header",
        "write_aedat2",
    ),
    "aedat4": ("Aedat4Stream", "aedat4_streams", "read_aedat4"),
    "frames": ("SPLIT_BY", "events_to_frames", "frame_bounds"),
    "resize": ("RESIZE_METHODS", "area_weights", "resize_events", "resize_frames"),
    "emulator": ("emulate_events", "make_raw_cifar10dvs_dir", "to_gray"),
    "orientation": (
        "CIFAR10DVS_ORIENTATION",
        "ORIENTATIONS",
        "OrientationFlags",
        "orient_events",
        "orientation_flags",
        "oriented_sensor_size",
        "unorient_events",
    ),
    "store": (
        "FORMAT_VERSION",
        "create_store",
        "done_flags",
        "pending_indices",
        "read_attrs",
        "write_block",
        "write_sample",
    ),
    "store_stats": ("finalize_store",),
    "store_verify": ("verify_store",),
    "convert": ("FrameParams", "SampleResult", "convert_event_file", "events_to_sample"),
    "parallel": ("MODES", "run_tasks"),
    "build": ("BuildReport", "write_emulated_store", "write_event_store", "write_image_store"),
    "sources": (
        "EventSource",
        "ImageSet",
        "load_cifar_pickle",
        "read_cifar10",
        "read_cifar100",
        "read_digits",
        "scan_event_dir",
    ),
    "splits": ("carve_validation", "holdout_split", "per_class_split"),
    "embedded": ("build_digits", "build_digits_dvs", "build_embedded"),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
