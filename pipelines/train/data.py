"""What the training loop reads from a data store: the model's arguments, a fit check, the mini-batches.

:func:`build_model_kwargs` turns a :class:`~evrobust.pipelines.train.config.TrainConfig` and the store's
:class:`~evrobust.datasets.DataInfo` into ``create_model`` arguments; :func:`check_model_fits_data` refuses a
model that cannot read the store's samples; :class:`Batches` yields one rank's mini-batches of a split on the
training device. :class:`~evrobust.pipelines.train.pipeline.Trainer` uses all three.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from evrobust.datasets import DataInfo
from evrobust.errors import UserInputError
from evrobust.pipelines.train.config import TrainConfig


def build_model_kwargs(config: TrainConfig, info: DataInfo) -> dict[str, Any]:
    """``create_model`` arguments: the store decides classes, channels and size unless overridden."""
    kwargs: dict[str, Any] = {
        "name": config.model,
        "num_classes": info.num_classes,
        "in_channels": info.in_channels,
        "T": config.T,
        "width": config.width,
        "neuron_backend": config.neuron_backend,
        "input_size": info.input_size,
        "mean": list(info.mean),
        "std": list(info.std),
    }
    kwargs.update(config.model_options)
    return kwargs


def check_model_fits_data(model_config: dict[str, Any], info: DataInfo) -> None:
    """UserInputError when a model cannot read the store's samples (channels, size, classes, frames)."""
    what = (
        f"{info.frames} event frames [2, {info.input_size}, {info.input_size}]"
        if info.kind == "frames"
        else (f"{info.in_channels}-channel {info.input_size}x{info.input_size} images")
    )
    problems = []
    if model_config["in_channels"] != info.in_channels:
        problems.append(f"in_channels={model_config['in_channels']} but the data has {info.in_channels}")
    if model_config["input_size"] != info.input_size:
        problems.append(f"input_size={model_config['input_size']} but the data is {info.input_size} px")
    if model_config["num_classes"] != info.num_classes:
        problems.append(f"num_classes={model_config['num_classes']} but the data has {info.num_classes}")
    if info.kind == "frames" and model_config.get("T") != info.frames:
        problems.append(f"T={model_config.get('T')} but the data has {info.frames} frames")
    if problems:
        raise UserInputError(
            f"model {model_config['name']!r} does not fit {info.path} ({what}): {'; '.join(problems)}; "
            "drop the conflicting --model-opt"
        )


class Batches:
    """Mini-batches of one rank's shard of a split, on the training device.

    In-memory splits are indexed directly (no per-sample Python work); on-disk splits go through a
    DataLoader with ``workers`` processes.
    """

    def __init__(self, dataset: Dataset, limit: int | None, workers: int) -> None:
        self.dataset = dataset
        self.n = len(dataset) if limit is None else min(limit, len(dataset))
        self.workers = workers
        self.tensors = dataset.tensors() if hasattr(dataset, "tensors") else None

    def iterate(
        self, order: Tensor, batch_size: int, device: torch.device
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches ``(x [B, ...] float32, y [B] int64)`` following ``order`` (indices into the split)."""
        chunks = [order[i : i + batch_size] for i in range(0, order.numel(), batch_size)]
        if self.tensors is not None:
            x_all, y_all = self.tensors
            for idx in chunks:
                yield x_all[idx].to(device, non_blocking=True), y_all[idx].to(device, non_blocking=True)
            return
        loader = DataLoader(
            self.dataset,
            batch_sampler=[c.tolist() for c in chunks],
            num_workers=self.workers,
            pin_memory=device.type == "cuda",
            persistent_workers=False,
        )
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def fixed(self, count: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """The first ``count`` samples (the fixed batch for gradient norms)."""
        return next(self.iterate(torch.arange(min(count, self.n)), count, device))


__all__ = [
    "Batches",
    "build_model_kwargs",
    "check_model_fits_data",
]
