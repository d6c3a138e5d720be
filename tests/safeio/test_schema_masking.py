"""The ``landscape`` and ``fidelity`` analysis schemas: a well-formed document reads back, and each broken
field is refused with one line naming it (hand-made documents of 2 samples, 3 radii, 2 directions)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from evrobust.errors import UserInputError
from evrobust.safeio.schemas import analysis as schema
from evrobust.safeio.schemas import validate

CURVE = {"q1": [0.1, 0.2, 0.3], "median": [0.2, 0.3, 0.4], "q3": [0.3, 0.4, 0.5]}


def _landscape() -> dict[str, Any]:
    direction = {
        "ce": copy.deepcopy(CURVE), "margin": copy.deepcopy(CURVE), "clipped": [0.0, 0.0, 0.5],
        "rise": {"median_radius": 0.03, "share": 0.5},
        "per_sample": {"ce": [[0.1, 0.2, 0.3], [0.2, 0.3, 0.4]], "margin": [[1.0, 0.5, -0.1], [2, 1, 0]],
                       "rise_radius": [0.03, None]},
    }
    return {
        "format": "evrobust-analysis", "kind": "landscape", "samples": 2, "eps": 8 / 255, "eps_text": "8/255",
        "radii": [0.001, 0.01, 0.1], "rise": 0.1, "sr_h": 0.01, "random_directions": 1,
        "clean": {"median_ce": 0.1, "per_sample": {"ce": [0.1, 0.2], "margin": [1.0, 2.0]}},
        "directions": {"gradient": direction, "random-0": copy.deepcopy(direction)},
        "adversarial": {"source": "pgd", "attack": "pgd10", "steps": 10, "broken": 0.5, "note": "found here",
                        "per_sample": {"distance": [0.03, 0.02], "broken": [1.0, 0.0]}},
    }


def _fidelity() -> dict[str, Any]:
    entry = {"cosine": 0.5, "ratio": 1.2, "median_disagreement": 1.5, "zero_fd_share": 0.25,
             "flat_changes_share": 0.5,
             "per_sample": {"surrogate": [[1.0, 2.0], [0.5, -1.0]], "fd": [[0.0, 2.0], [0.5, 0.0]]}}
    return {
        "format": "evrobust-analysis", "kind": "fidelity", "samples": 2, "steps": [0.001, 0.01],
        "directions": ["gradient", "random-0"], "ensemble": "paper",
        "specs": {"triangle:1": {"results": [{"step": 0.001, **copy.deepcopy(entry)},
                                             {"step": 0.01, **copy.deepcopy(entry)}]}},
        "headline": {"spec": "triangle:1", "step": 0.01, "cosine": 0.5},
    }


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *head, last = path.split("/")
        target: Any = doc
        for part in head:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def test_well_formed_documents_validate() -> None:
    assert schema.model_for(_landscape()) is schema.LandscapeAnalysis
    assert schema.model_for(_fidelity()) is schema.FidelityAnalysis
    validate(_landscape(), "analysis", "doc.json")
    validate(_fidelity(), "analysis", "doc.json")


@pytest.mark.parametrize(
    ("make", "mutate", "words"),
    [
        (_landscape, _set("radii", [0.01, 0.001, 0.1]), "radii is not strictly increasing"),
        (_landscape, _set("radii", [0.0, 0.01, 0.1]), "radii.0"),
        (_landscape, _set("directions/gradient/ce/median", [0.1, 0.2]), "ce.median has 2 values for 3 radii"),
        (_landscape, _set("directions/gradient/per_sample/ce", [[0.1, 0.2, 0.3]]), "1 rows for 2 samples"),
        (_landscape, _set("directions/gradient/per_sample/margin", [[1, 2], [3, 4]]), "2 columns, not 3"),
        (_landscape, _set("directions/gradient/per_sample/rise_radius", [0.03, 2.0]), "not a radius"),
        (_landscape, _set("directions/gradient/clipped", [0, 0, 1.5]), "clipped.2"),
        (_landscape, _set("clean/per_sample/ce", [0.1]), "1 values for 2 samples"),
        (_fidelity, _set("specs/triangle:1/results/0/cosine", 1.5), "cosine"),
        (_fidelity, _set("specs/triangle:1/results/0/median_disagreement", 2.5), "median_disagreement"),
        (_fidelity, _set("specs/triangle:1/results/1/step", 0.03), "not those of 'steps'"),
        (_fidelity, _set("specs/triangle:1/results/0/per_sample/fd", [[0.0], [0.5]]), "1 columns, not 2"),
        (_fidelity, _set("steps", [0.01, 0.001]), "steps is not strictly increasing"),
    ],
)
def test_broken_fields_are_refused_naming_them(make: Callable, mutate: Callable, words: str) -> None:
    document = make()
    mutate(document)
    with pytest.raises(UserInputError) as info:
        validate(document, "analysis", "doc.json")
    message = str(info.value)
    assert "\n" not in message and message.startswith("doc.json: field") and words in message, message
