"""``evrobust info``: versions, compute device and the neuron backends that can run here."""

from __future__ import annotations

import importlib.metadata as md
import platform

PACKAGES = (
    "evrobust",
    "torch",
    "numpy",
    "numba",
    "zarr",
    "dask",
    "distributed",
    "typer",
    "spikingjelly",
    "norse",
    "torchattacks",
    "tonic",
    "aedat",
    "safetensors",
)


def collect_info() -> dict[str, object]:
    """Versions of the packages evrobust uses, the device torch sees, and the usable neuron backends."""
    import torch

    from evrobust.neurons import list_backends

    versions: dict[str, str] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} device(s))"
    else:
        device = "cpu (no CUDA device visible)"
    return {
        "versions": versions,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "neuron_backends": list_backends(),
    }


def info_command() -> None:
    """Print versions, the compute device (cpu/cuda) and the available neuron backends."""
    from rich.console import Console
    from rich.table import Table

    data = collect_info()
    table = Table(title="evrobust environment", show_header=False)
    for name, version in data["versions"].items():  # type: ignore[union-attr]
        table.add_row(name, version)
    table.add_row("device", str(data["device"]))
    table.add_row("torch threads", str(data["torch_threads"]))
    table.add_row("neuron backends", ", ".join(data["neuron_backends"]))  # type: ignore[arg-type]
    Console().print(table)
