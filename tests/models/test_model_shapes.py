"""Every registered model: output shapes over channels x sizes x input kinds, input gradients, BN modes."""

from __future__ import annotations

import pytest
import torch

from evrobust.models import list_models

from .conftest import assert_active, make_active, small_model

CHANNELS = (1, 2, 3)
SIZES = (8, 32, 48)


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("size", SIZES)
def test_static_and_frame_input_give_logits_per_sample(name: str, channels: int, size: int) -> None:
    model = small_model(name, num_classes=7, in_channels=channels, input_size=size, T=3)
    static = model(torch.rand(2, channels, size, size))
    assert static.shape == (2, 7) and static.dtype == torch.float32
    # Frame input brings its own number of steps (5 here, not the model's T=3).
    frames = model(torch.rand(2, 5, channels, size, size))
    assert frames.shape == (2, 7)
    assert torch.isfinite(static).all() and torch.isfinite(frames).all()


@pytest.mark.parametrize("name", list_models())
def test_static_input_equals_the_same_frame_repeated_T_times(name: str) -> None:
    x = torch.rand(3, 2, 16, 16)
    model = make_active(small_model(name, in_channels=2, input_size=16, T=4), x)
    repeated = x.unsqueeze(1).expand(3, 4, 2, 16, 16)
    logits = model(x)
    assert_active(logits)
    torch.testing.assert_close(logits, model(repeated), rtol=0, atol=0)
    # A different frame order is a different input: frame t really enters at step t.
    moving = torch.stack([x, x.flip(-1), x, x.flip(-2)], dim=1)
    assert not torch.equal(model(moving), logits)


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("kind", ["static", "frames"])
def test_gradients_reach_the_input(name: str, kind: str) -> None:
    model = small_model(name, in_channels=2, input_size=16, T=3).train()
    shape = (4, 2, 16, 16) if kind == "static" else (4, 3, 2, 16, 16)
    x = torch.rand(shape, requires_grad=True)
    logits = model(x)
    y = torch.arange(4) % 10
    torch.nn.functional.cross_entropy(logits, y).backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert torch.isfinite(x.grad).all()
    assert (x.grad != 0).any(), "surrogate gradients must reach the input"
    # ... and every parameter that takes part in the forward gets a gradient too.
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"


@pytest.mark.parametrize("name", list_models())
def test_eval_mode_is_per_sample_and_deterministic(name: str) -> None:
    x = torch.rand(6, 3, 8, 8)
    model = make_active(small_model(name, in_channels=3, input_size=8, T=2), x)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    full = model(x)
    assert_active(full)
    # BN uses running statistics in eval: a sample's logits do not depend on its batch mates ...
    torch.testing.assert_close(model(x[:1]), full[:1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model(x[3:]), full[3:], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model(x), full, rtol=0, atol=0)
    # ... and eval forwards leave the running statistics alone.
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)


@pytest.mark.parametrize("name", list_models())
def test_train_mode_updates_running_statistics_over_time_and_batch(name: str) -> None:
    x = torch.rand(6, 1, 8, 8)
    model = make_active(small_model(name, in_channels=1, input_size=8, T=2), x).train()
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    batches = int(bn.num_batches_tracked)
    model(torch.rand(5, 1, 8, 8))
    assert int(bn.num_batches_tracked) == batches + 1
    assert not torch.equal(bn.running_mean, before)
    # In train mode the batch statistics couple samples: logits of a sample change with its batch mates.
    a = model(x)[:3]
    assert_active(a)
    b = model(torch.cat([x[:3], torch.rand(3, 1, 8, 8)]))[:3]
    assert not torch.equal(a, b)
