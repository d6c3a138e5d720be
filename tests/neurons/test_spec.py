"""GradSpec: parsing, text round-trips, the ensembles, and one-line errors for bad specs."""

from __future__ import annotations

import math

import pytest

from evrobust.errors import UserInputError
from evrobust.neurons import DEFAULT_SPEC, PAPER_ENSEMBLE, WIDTH_ENSEMBLE, GradSpec, list_surrogates


def test_default_spec_is_triangle_width_one() -> None:
    assert DEFAULT_SPEC == GradSpec("surrogate", "triangle", 1.0)
    assert str(DEFAULT_SPEC) == "triangle:1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("triangle:1", GradSpec("surrogate", "triangle", 1.0)),
        ("sigmoid:4", GradSpec("surrogate", "sigmoid", 4.0)),
        ("atan:2", GradSpec("surrogate", "atan", 2.0)),
        ("triangle:0.3", GradSpec("surrogate", "triangle", 0.3)),
        ("rate", GradSpec("rate")),
        # a bare name takes the paper's default width for that surrogate
        ("sigmoid", GradSpec("surrogate", "sigmoid", 4.0)),
        ("atan", GradSpec("surrogate", "atan", 2.0)),
        (" Triangle : 2.5 ", GradSpec("surrogate", "triangle", 2.5)),
        ("RATE", GradSpec("rate")),
    ],
)
def test_parse(text: str, expected: GradSpec) -> None:
    assert GradSpec.parse(text) == expected


def test_str_forms_are_the_short_ones() -> None:
    assert [str(s) for s in PAPER_ENSEMBLE] == ["triangle:1", "sigmoid:4", "atan:2", "rate"]


@pytest.mark.parametrize("width", [1.0, 0.1, 0.30000000000000004, 1e-7, 123.456, 2.0 / 3.0])
def test_round_trip_is_exact_for_any_width(width: float) -> None:
    spec = GradSpec("surrogate", "atan", width)
    again = GradSpec.parse(str(spec))
    assert again == spec
    assert again.width == width  # bit-exact, not merely close


def test_rate_specs_are_normalised_and_equal() -> None:
    spec = GradSpec("rate", "sigmoid", 7.0)
    assert spec == GradSpec("rate") == GradSpec.parse("rate")
    assert spec.is_rate and str(spec) == "rate"


def test_parse_passes_specs_through() -> None:
    assert GradSpec.parse(PAPER_ENSEMBLE[1]) is PAPER_ENSEMBLE[1]


def test_paper_ensemble() -> None:
    assert PAPER_ENSEMBLE == (
        GradSpec("surrogate", "triangle", 1.0),
        GradSpec("surrogate", "sigmoid", 4.0),
        GradSpec("surrogate", "atan", 2.0),
        GradSpec("rate"),
    )


def test_width_ensemble_is_triangle_point1_to_3_step_point1() -> None:
    assert len(WIDTH_ENSEMBLE) == 30
    assert {s.surrogate for s in WIDTH_ENSEMBLE} == {"triangle"}
    assert all(s.mode == "surrogate" for s in WIDTH_ENSEMBLE)
    assert [s.width for s in WIDTH_ENSEMBLE] == [float(f"{k / 10:.1f}") for k in range(1, 31)]
    assert str(WIDTH_ENSEMBLE[2]) == "triangle:0.3"  # not 0.30000000000000004
    assert str(WIDTH_ENSEMBLE[-1]) == "triangle:3"


def test_specs_are_frozen_and_hashable() -> None:
    with pytest.raises(AttributeError):
        DEFAULT_SPEC.width = 2.0  # type: ignore[misc]
    assert len({GradSpec.parse("triangle:1"), DEFAULT_SPEC, GradSpec.parse("rate")}) == 2


def _one_line(err: pytest.ExceptionInfo[UserInputError]) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_unknown_surrogate_names_the_valid_choices() -> None:
    with pytest.raises(UserInputError) as err:
        GradSpec("surrogate", "relu", 1.0)
    msg = _one_line(err)
    assert "relu" in msg
    for name in list_surrogates():
        assert name in msg


def test_unknown_mode_names_the_valid_choices() -> None:
    with pytest.raises(UserInputError) as err:
        GradSpec("bptt")
    msg = _one_line(err)
    assert "bptt" in msg and "surrogate" in msg and "rate" in msg


@pytest.mark.parametrize("width", [0.0, -1.0, math.nan, math.inf, "wide"])
def test_bad_width(width: object) -> None:
    with pytest.raises(UserInputError) as err:
        GradSpec("surrogate", "triangle", width)  # type: ignore[arg-type]
    assert "width" in _one_line(err)


@pytest.mark.parametrize("text", ["triangle:0", "triangle:-2", "sigmoid:abc", "gauss:1", "", "rate:1"])
def test_parse_bad_text(text: str) -> None:
    with pytest.raises(UserInputError) as err:
        GradSpec.parse(text)
    msg = _one_line(err)
    assert repr(text) in msg or "width" in msg


def test_parse_bad_text_lists_forms() -> None:
    with pytest.raises(UserInputError) as err:
        GradSpec.parse("gauss:1")
    msg = _one_line(err)
    assert "rate" in msg and all(name in msg for name in list_surrogates())


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(UserInputError):
        GradSpec.parse(4)  # type: ignore[arg-type]


def test_user_input_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        GradSpec.parse("nope")


@pytest.mark.parametrize(
    ("text", "expected", "printed"),
    [
        ("rect:0.5", GradSpec("surrogate", "rect", 0.5), "rect:0.5"),
        ("rect", GradSpec("surrogate", "rect", 1.0), "rect:1"),
        ("exp:2", GradSpec("surrogate", "exp", 2.0), "exp:2"),
        ("expd:0.5", GradSpec("surrogate", "expd", 0.5), "expd:0.5"),
        ("ste", GradSpec("surrogate", "ste"), "ste"),
        (" STE ", GradSpec("surrogate", "ste", 7.0), "ste"),  # widthless: any width normalises away
        ("bptr", GradSpec("bptr"), "bptr"),
        ("ann", GradSpec("ann", "sigmoid", 3.0), "ann"),
        ("assg", GradSpec("assg", width=0.425), "assg:0.425"),
        ("assg:0.4", GradSpec("assg", width=0.4), "assg:0.4"),
    ],
)
def test_parse_new_spellings(text: str, expected: GradSpec, printed: str) -> None:
    spec = GradSpec.parse(text)
    assert spec == expected and str(spec) == printed
    assert GradSpec.parse(str(spec)) == spec


def test_crafting_flags() -> None:
    texts = ("triangle:1", "rate", "ste", "bptr", "ann", "assg")
    flags = {t: GradSpec.parse(t).crafting_only for t in texts}
    assert [t for t, crafting in flags.items() if crafting] == ["bptr", "ann", "assg"]
    assert [t for t in ("bptr", "ann", "assg") if GradSpec.parse(t).stateful] == ["assg"]
    assert GradSpec.parse("assg").surrogate == "atan"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("ste:1", "takes no width"),
        ("bptr:2", "takes no width"),
        ("ann:0.5", "takes no width"),
        ("assg:0.5", "A in (0, 0.5)"),
        ("assg:0", "A in (0, 0.5)"),
        ("assg:x", "not a number"),
        ("rect:-1", "width"),
        ("boxcar:1", "unknown gradient spec"),
    ],
)
def test_parse_bad_new_spellings(text: str, needle: str) -> None:
    with pytest.raises(UserInputError) as err:
        GradSpec.parse(text)
    assert needle in _one_line(err)


def test_unknown_spec_lists_every_spelling() -> None:
    with pytest.raises(UserInputError) as err:
        GradSpec.parse("gauss")
    msg = _one_line(err)
    for word in ("rate", "bptr", "ann", "ste", "assg", "rect", "exp", "expd", "triangle"):
        assert word in msg


def test_wide_ensemble_members() -> None:
    from evrobust.neurons import WIDE_ENSEMBLE

    names = [str(s) for s in WIDE_ENSEMBLE]
    assert names[:4] == [str(s) for s in PAPER_ENSEMBLE]
    # the 19 members of the RobustSNNConversion ensemble (PCW = triangle), then PDSG last, nothing else
    reference = [
        "triangle:1", "triangle:2", "triangle:3", "triangle:0.5", "triangle:0.25",
        "expd:0.5", "expd:1", "expd:2", "exp:0.5", "exp:1", "exp:2",
        "rect:0.25", "rect:0.5", "rect:1", "rect:2", "rect:4", "ste", "bptr", "ann",
    ]
    assert set(reference) <= set(names) and len(reference) == 19
    assert sorted(names) == sorted(set(reference) | {"sigmoid:4", "atan:2", "rate", "pdsg"})
    assert names[-1] == "pdsg"
    assert len(names) == len(set(names)) == 23
