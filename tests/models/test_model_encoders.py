"""Input side: normalisation by hand, static repetition, frame order, and bad input."""

from __future__ import annotations

import pytest
import torch

from evrobust.errors import UserInputError
from evrobust.models import InputEncoder, Normalize, list_models

from .conftest import assert_active, make_active, small_model


def test_normalize_by_hand() -> None:
    norm = Normalize([0.5, 0.25], [0.5, 0.125])
    x = torch.tensor([[[[1.0, 0.0]], [[0.25, 0.5]]]])  # [1, 2, 1, 2]
    want = torch.tensor([[[[1.0, -1.0]], [[0.0, 2.0]]]])
    torch.testing.assert_close(norm(x), want)
    # Works on frames [N, T, C, H, W] too: the channel axis is -3.
    frames = x.unsqueeze(1).repeat(1, 3, 1, 1, 1)
    torch.testing.assert_close(norm(frames), want.unsqueeze(1).repeat(1, 3, 1, 1, 1))
    # Constants are not saved: config carries them.
    assert norm.state_dict() == {}
    ident = Normalize(None, None)
    assert ident(x) is x


def test_static_input_is_repeated_over_T_time_major() -> None:
    enc = InputEncoder(in_channels=3, T=4, input_size=5, mean=[0.1, 0.2, 0.3], std=[1.0, 2.0, 4.0])
    x = torch.rand(2, 3, 5, 5)
    out = enc(x)
    assert out.shape == (4, 2, 3, 5, 5)
    mean, std = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1), torch.tensor([1.0, 2.0, 4.0]).view(1, 3, 1, 1)
    want = (x - mean) / std
    for t in range(4):
        torch.testing.assert_close(out[t], want)


def test_frame_input_is_fed_frame_by_frame() -> None:
    enc = InputEncoder(in_channels=2, T=9, input_size=4)
    x = torch.zeros(3, 5, 2, 4, 4)
    for n in range(3):
        for t in range(5):
            x[n, t] = 10 * n + t  # frame value encodes (sample, step)
    out = enc(x)
    assert out.shape == (5, 3, 2, 4, 4)  # T from the input (5), not the encoder's T (9)
    for n in range(3):
        for t in range(5):
            assert torch.all(out[t, n] == 10 * n + t)


def test_float64_input_is_accepted_and_gives_the_float32_answer() -> None:
    x = torch.rand(3, 1, 8, 8)
    model = make_active(small_model("vgg_small", in_channels=1, input_size=8), x)
    logits = model(x)
    assert_active(logits)
    torch.testing.assert_close(model(x.double()), logits)


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize(
    ("x", "fragment"),
    [
        (torch.rand(2, 8, 8), "rank 3"),
        (torch.rand(1, 2, 2, 3, 8, 8), "rank 6"),
        (torch.rand(2, 2, 8, 8), "2 channels"),
        (torch.rand(2, 4, 2, 8, 8), "2 channels"),
        (torch.rand(2, 3, 16, 16), "input_size=8"),
        (torch.rand(2, 3, 8, 9), "input_size=8"),
        (torch.rand(2, 0, 3, 8, 8), "T >= 1"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "floating point"),
        (torch.rand(0, 3, 8, 8), "empty batch"),
    ],
)
def test_bad_input_raises_a_one_line_user_error(name: str, x: torch.Tensor, fragment: str) -> None:
    model = small_model(name, in_channels=3, input_size=8)
    with pytest.raises(UserInputError) as e:
        model(x)
    text = str(e.value)
    assert fragment in text and "\n" not in text
    if "rank" in fragment or "channels" in fragment:
        assert "[N,3,8,8]" in text and "[N,T,3,8,8]" in text  # names the valid shapes


def test_non_tensor_input() -> None:
    model = small_model("vgg_small", in_channels=1, input_size=8)
    with pytest.raises(UserInputError, match="torch.Tensor"):
        model([[0.0] * 8] * 8)


def test_normalisation_moves_with_the_model_dtype() -> None:
    model = small_model("vgg_small", in_channels=2, input_size=8, mean=[0.5, 0.5], std=[0.5, 0.5]).double()
    assert model.encoder.normalize.mean.dtype == torch.float64
    assert model(torch.rand(2, 2, 8, 8)).dtype == torch.float64
