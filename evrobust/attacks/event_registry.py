"""Event-attack names -> configured attacks of the event-domain threat models (``--threat events|retiming``).

Each entry names its threat model, and its factory takes the seed, the gradient spec and the budgets that
apply to it (counted in events, see :mod:`evrobust.attacks.event_base`):

==============  =========  ==================================================================================
name            threat     attack
==============  =========  ==================================================================================
``sda``         events     SDA on integer counts: insert or delete one event per flipped cell; ``max_events``
``sda-binary``  events     SDA on binary frames (the authors' protocol): the front end binarises, a flip
                           toggles a cell; ``max_events`` counts toggled cells
``retime-inf``  retiming   spike retiming under B-inf: every event moves by at most ``max_shift`` bins
``retime-zero`` retiming   spike retiming under B0: at most ``max_moved`` events move (each by at most
                           ``max_shift`` bins)
==============  =========  ==================================================================================

The attacks' own modules are imported when an attack is created, so listing the registry costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evrobust.attacks.event_base import THREATS, EventAttack, check_budget_int
from evrobust.errors import UserInputError

__all__ = [
    "DEFAULT_MAX_MOVED",
    "DEFAULT_MAX_SHIFT",
    "EVENT_ATTACKS",
    "EVENT_THREATS",
    "EventAttackEntry",
    "create_event_attack",
    "default_event_attacks",
    "parse_event_attacks",
]

EVENT_THREATS: tuple[str, ...] = tuple(t for t in THREATS if t != "frames")
"""The threats whose attacks edit events: ``events`` and ``retiming``."""

DEFAULT_MAX_SHIFT = 1
"""D of the retiming budgets (bins): one bin of jitter, the setting the retiming literature headlines."""

DEFAULT_MAX_MOVED = 100
"""k of the B0 retiming budget (events moved) when none is given."""


@dataclass(frozen=True)
class EventAttackEntry:
    """One registered event attack: CLI name, table label, threat, factory, description, binary front end.

    ``factory(seed, spec, max_events, max_shift, max_moved) -> EventAttack``; ``binary`` marks attacks that
    see the model through the binary-frame front end (:class:`~evrobust.attacks.event_base.EventFrontEnd`
    with ``binary=True``).
    """

    name: str
    label: str
    threat: str
    factory: Callable[..., EventAttack]
    description: str
    binary: bool = False


def _sda(mode: str) -> Callable[..., EventAttack]:
    def make(
        seed: int, spec: Any, max_events: int | None, max_shift: int, max_moved: int | None
    ) -> EventAttack:
        from evrobust.attacks.sda import SDA

        return SDA(max_events=max_events, mode=mode, seed=seed, spec=spec)

    return make


def _retime(budget: str) -> Callable[..., EventAttack]:
    def make(
        seed: int, spec: Any, max_events: int | None, max_shift: int, max_moved: int | None
    ) -> EventAttack:
        from evrobust.attacks.retiming import SpikeRetiming

        moved = None if budget == "inf" else (DEFAULT_MAX_MOVED if max_moved is None else max_moved)
        return SpikeRetiming(budget=budget, max_shift=max_shift, max_moved=moved, seed=seed, spec=spec)

    return make


EVENT_ATTACKS: dict[str, EventAttackEntry] = {
    e.name: e
    for e in (
        EventAttackEntry(
            "sda",
            "SDA",
            "events",
            _sda("count"),
            "sparse dynamic attack on integer counts: insert/delete one event per flipped cell",
        ),
        EventAttackEntry(
            "sda-binary",
            "SDA (binary)",
            "events",
            _sda("binary"),
            "sparse dynamic attack on binary frames (the authors' protocol)",
            binary=True,
        ),
        EventAttackEntry(
            "retime-inf",
            "Retiming B∞",
            "retiming",
            _retime("inf"),
            "spike retiming: every event shifted by at most D bins",
        ),
        EventAttackEntry(
            "retime-zero",
            "Retiming B0",
            "retiming",
            _retime("zero"),
            "spike retiming: at most k events moved, each by at most D bins",
        ),
    )
}

_DEFAULTS: dict[str, tuple[str, ...]] = {"events": ("sda",), "retiming": ("retime-inf", "retime-zero")}


def default_event_attacks(threat: str) -> tuple[str, ...]:
    """The attacks ``--threat threat`` runs when ``--attacks`` is not given."""
    if threat not in EVENT_THREATS:
        raise UserInputError(f"unknown event threat {threat!r}; choose one of {', '.join(EVENT_THREATS)}")
    return _DEFAULTS[threat]


def parse_event_attacks(threat: str, text: str | None) -> tuple[str, ...]:
    """The attack names of ``--attacks`` (comma-separated) for ``threat``, checked; the defaults for None."""
    if text is None:
        return default_event_attacks(threat)
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    if not names:
        raise UserInputError("--attacks names no attack")
    valid = [n for n, e in EVENT_ATTACKS.items() if e.threat == threat]
    for name in names:
        if name not in valid:
            raise UserInputError(
                f"unknown attack {name!r} for --threat {threat}; choose from {', '.join(valid)}"
            )
    return names


def create_event_attack(
    name: str,
    *,
    seed: int = 0,
    spec: Any = None,
    max_events: int | None = None,
    max_shift: int = DEFAULT_MAX_SHIFT,
    max_moved: int | None = None,
) -> EventAttack:
    """A configured event attack. Budgets < 0 are a one-line :class:`UserInputError`."""
    if name not in EVENT_ATTACKS:
        raise UserInputError(f"unknown event attack {name!r}; choose from {', '.join(EVENT_ATTACKS)}")
    if max_events is not None:
        check_budget_int("--max-events", max_events)
    check_budget_int("--max-shift", max_shift)
    if max_moved is not None:
        check_budget_int("--max-moved", max_moved)
    return EVENT_ATTACKS[name].factory(seed, spec, max_events, max_shift, max_moved)
