"""Batched augmentation against per-sample reference implementations written here."""

from __future__ import annotations

import numpy as np
import torch

from evrobust.datasets.augment import (
    CUTOUT_SIDE,
    augment_frames,
    augment_images,
    crop_flip,
    cutout_frames,
    roll_frames,
    rotate_frames,
)


def test_crop_flip_matches_a_per_sample_loop() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 10, 12, generator=g)
    oy = torch.tensor([0, 8, 4, 2, 0, 8])
    ox = torch.tensor([8, 0, 4, 1, 0, 8])
    flip = torch.tensor([False, True, False, True, True, False])
    out = crop_flip(x, oy, ox, flip, pad=4)
    for i in range(6):
        padded = torch.nn.functional.pad(x[i], (4, 4, 4, 4))
        ref = padded[:, oy[i] : oy[i] + 10, ox[i] : ox[i] + 12]
        if flip[i]:
            ref = ref.flip(-1)
        assert torch.equal(out[i], ref)
    # Offset 0 shows the zero padding: the top 4 rows and left 4 columns of sample 4 (flipped: right) are 0.
    assert out[4, :, :4].abs().sum() == 0 and out[4, :, :, -4:].abs().sum() == 0


def test_augment_images_is_reproducible_and_keeps_pixels() -> None:
    x = torch.rand(32, 3, 8, 8)
    a = augment_images(x, torch.Generator().manual_seed(1))
    b = augment_images(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    # Every output pixel is 0 (padding) or one of the sample's own pixels.
    for i in range(32):
        values = set(x[i].flatten().tolist()) | {0.0}
        assert set(a[i].flatten().tolist()) <= values


def test_roll_matches_torch_roll() -> None:
    x = torch.rand(3, 4, 2, 9, 7)
    sy, sx = torch.tensor([0, -5, 3]), torch.tensor([5, 2, -1])
    out = roll_frames(x, sy, sx)
    for i in range(3):
        assert torch.equal(out[i], torch.roll(x[i], shifts=(int(sy[i]), int(sx[i])), dims=(-2, -1)))


def test_rotation_by_hand() -> None:
    x = torch.rand(2, 3, 2, 8, 8)
    assert torch.equal(rotate_frames(x, torch.zeros(2)), x)
    # 90 degrees counter-clockwise on a square grid is an exact pixel permutation: torch.rot90 with k=1.
    out = rotate_frames(x, torch.tensor([90.0, -90.0]))
    assert torch.equal(out[0], torch.rot90(x[0], 1, dims=(-2, -1)))
    assert torch.equal(out[1], torch.rot90(x[1], -1, dims=(-2, -1)))
    # A 30-degree rotation keeps the centre pixel and zero-fills the corners.
    img = torch.ones(1, 1, 1, 9, 9)
    r = rotate_frames(img, torch.tensor([30.0]))
    assert r[0, 0, 0, 4, 4] == 1 and r[0, 0, 0, 0, 0] == 0


def test_cutout_matches_the_reference_rule() -> None:
    x = torch.ones(4, 2, 2, 48, 48)
    cy, cx = torch.tensor([0, 47, 20, 10]), torch.tensor([0, 30, 20, 47])
    out = cutout_frames(x, cy, cx)
    for i in range(4):
        mask = np.ones((48, 48), np.float32)
        half = CUTOUT_SIDE // 2
        y1, y2 = np.clip(int(cy[i]) - half, 0, 48), np.clip(int(cy[i]) + half, 0, 48)
        x1, x2 = np.clip(int(cx[i]) - half, 0, 48), np.clip(int(cx[i]) + half, 0, 48)
        mask[y1:y2, x1:x2] = 0
        assert torch.equal(out[i], torch.from_numpy(mask).expand(2, 2, 48, 48))


def test_augment_frames_applies_flip_then_one_op() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(24, 3, 2, 16, 16)
    out = augment_frames(x, torch.Generator().manual_seed(3))
    # Replay the draws in the documented order to get each sample's expected transform.
    n = 24
    flip = torch.rand(n, generator=g) < 0.5
    op = torch.randint(0, 3, (n,), generator=g)
    shifts = torch.randint(-5, 6, (2 * n,), generator=g)
    angles = (torch.rand(n, generator=g) * 2 - 1) * 30
    cy = torch.randint(0, 16, (n,), generator=g)
    cx = torch.randint(0, 16, (n,), generator=g)
    assert set(op.tolist()) == {0, 1, 2}
    for i in range(n):
        xi = x[i : i + 1].flip(-1) if flip[i] else x[i : i + 1]
        if op[i] == 0:
            ref = torch.roll(xi[0], shifts=(int(shifts[i]), int(shifts[n + i])), dims=(-2, -1))
        elif op[i] == 1:
            ref = rotate_frames(xi, angles[i : i + 1])[0]
        else:
            ref = cutout_frames(xi, cy[i : i + 1], cx[i : i + 1])[0]
        assert torch.equal(out[i], ref)
