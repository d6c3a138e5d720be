"""Models for the export tests: tiny SNNs trained on the real sklearn digits, real DVS frames, and a run
dir."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from evrobust.models import create_model
from evrobust.pipelines.train.config import TrainConfig
from evrobust.pipelines.train.pipeline import train

MNIST_DVS = "dvs/aedat2_dvs128/mnist_0_scale04_0001.aedat"  # under the real_data fixture's folder
TRAIN_SAMPLES = 1400  # of the 1797 digits; the remaining 397 are the held-out test inputs


@pytest.fixture(scope="session")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1797 sklearn digits as ``[N, 1, 8, 8]`` floats in [0, 1] and their labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return x, torch.tensor(data.target)


def quick_train(name: str, digits: tuple[torch.Tensor, torch.Tensor], steps: int, **kw: object) -> nn.Module:
    """A few Adam steps on the first 1400 digits (T=2): enough for well above chance, in seconds."""
    x, y = digits
    x_train, y_train = x[:TRAIN_SAMPLES], y[:TRAIN_SAMPLES]
    torch.manual_seed(0)
    mean, std = float(x_train.mean()), float(x_train.std())
    model = create_model(name, 10, in_channels=1, input_size=8, T=2, mean=[mean], std=[std], **kw)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        index = torch.randint(0, TRAIN_SAMPLES, (64,), generator=generator)
        loss = F.cross_entropy(model(x_train[index]), y_train[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="session")
def trained_vgg(digits: tuple[torch.Tensor, torch.Tensor]) -> nn.Module:
    return quick_train("vgg_small", digits, steps=80, width=0.5)


@pytest.fixture(scope="session")
def trained_wrn(digits: tuple[torch.Tensor, torch.Tensor]) -> nn.Module:
    return quick_train("wrn_small", digits, steps=60, width=0.25)


@pytest.fixture(scope="session")
def dvs_frames(real_data: Path) -> torch.Tensor:
    """Eight real event-frame samples ``[8, T=4, 2, 32, 32]`` in [0, 1]: consecutive slices of a real
    MNIST-DVS
    recording (AEDAT 2.0, DVS128), four frames each by event count, area-resized 128 -> 32, counts / 4."""
    from evrobust.preprocess.aedat2 import read_aedat2
    from evrobust.preprocess.frames import events_to_frames
    from evrobust.preprocess.resize import resize_frames

    events = read_aedat2(real_data / MNIST_DVS)
    samples = []
    for chunk in np.array_split(events, 8):
        frames = events_to_frames(chunk, 4, sensor_size=(128, 128), split_by="number")
        samples.append(np.clip(resize_frames(frames, size=32) / 4.0, 0.0, 1.0))
    return torch.from_numpy(np.stack(samples).astype(np.float32))


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny, barely trained) run directory written by `evrobust train`, for the pipeline and CLI."""
    root = tmp_path_factory.mktemp("export-run")
    config = TrainConfig(
        data="digits",
        data_dir=str(root / "data"),
        model="vgg_small",
        width=0.25,
        T=2,
        epochs=1,
        batch_size=32,
        lr=0.1,
        limit_train=64,
        limit_val=32,
        device="cpu",
        out=str(root / "run"),
        seed=0,
        progress=False,
        defense="sr",
        lam=0.008,
    )
    return train(config)
