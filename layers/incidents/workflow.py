"""The ticket workflow (事件工单流转) as an explicit table of allowed moves, Signalen-style.

Why a table: the desk, the API, the KPIs and the docs all read the same rows, and an illegal move is
refused with the list of moves that are allowed instead of a silent no-op.

Main line (受理-分派-办结-审核-回访): received → dispatched → signed → handling → completed → reviewed
→ revisited → closed. The five moves (五单办理) of the seeds:
- ``grab`` 抢单: a town takes a received ticket first (received → dispatched, to itself).
- ``dispatch`` 派单: the district (or city) sends a received or returned ticket to a town or department.
- ``split`` 分单: a town sends parts down to villages. The parent keeps its state and tracks the
  children; the move only records the target villages, the service creates the child tickets.
- ``join`` 联单: a town adds departments as co-handlers (state unchanged, records the units).
- ``return`` 返单: a handler sends a hard case back up to the district (→ returned, note required);
  the district then dispatches it again, leads it itself, or signs it off.
Loops and exits:
- ``review_fail`` (completed → handling) and an unsatisfied ``revisit`` (reviewed → handling, 二次办理)
  are rework: their transitions carry ``rework=True`` so the first-time-fix rate can count them.
- ``sign_off`` 销号: an objectively unsolvable case is closed by sign-off from any open state, by the
  district or city, with the approval as the note.
- ``extend`` 延期: an approved deadline extension (state unchanged; payload ``until``, a datetime).
- ``reject`` 不予立案: a received report that fails the category's acceptance condition (duplicate,
  not a real problem) is closed at intake with a note.

Verification is recorded, not enforced, here (keeping the table simple; the service and KPIs read it):
- ``check`` 核实 (received → received): someone confirmed on site that the problem exists; payload
  ``verified`` (bool). A report found false is then rejected.
- ``verify_fix`` 核查 (completed → completed): someone confirmed on site that it was fixed; payload
  ``fixed`` (bool). The reviewer then passes or fails the completion.
- ``close`` is allowed from reviewed as well as revisited: camera, sensor and patrol tickets have no
  citizen to call back. Citizen channels must be revisited (100% 回访): the row says so
  (``revisit_first``) and :func:`blocked_moves` answers it, since channel is not part of the state.

A grid worker (网格员) signs, starts and completes a ticket assigned down to its grid's village or
community (the service refuses one assigned elsewhere): the phone's "handle an assigned ticket".

Roles are permissions by level; whether *this* town may act on *this* ticket is
:mod:`layers.incidents.authz`'s check (``by_assignee`` rows are the assignee's alone).

Each row also declares the move's effects (clocks started and met, fields set, split children), so
what a move does is read in one line; :func:`layers.incidents.moves.plan_move` applies them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from gis.errors import IllegalMove, InvalidInput
from layers.incidents.sla import (
    Kind,  # the SLA clocks; a clock's deadline is the ticket's <kind>_due
)


class State(StrEnum):
    RECEIVED = "received"  # 受理
    DISPATCHED = "dispatched"  # 已派单
    SIGNED = "signed"  # 已签收
    HANDLING = "handling"  # 处置中
    COMPLETED = "completed"  # 已办结 (by the handler)
    REVIEWED = "reviewed"  # 已审核
    REVISITED = "revisited"  # 已回访
    CLOSED = "closed"  # 已结案
    RETURNED = "returned"  # 已返单 (back at the district)
    SIGNED_OFF = "signed_off"  # 已销号


class Role(StrEnum):
    CITY = "city"
    DISTRICT = "district"
    TOWN = "town"
    VILLAGE = "village"
    DEPARTMENT = "department"
    GRID_WORKER = "grid_worker"
    SYSTEM = "system"  # automatic: camera and sensor alarms


TERMINAL = frozenset({State.CLOSED, State.SIGNED_OFF})  # the one list of end states
OPEN = frozenset(State) - TERMINAL
# TERMINAL spelled for raw SQL: ``state NOT IN {TERMINAL_SQL}``.
TERMINAL_SQL = "(" + ", ".join(f"'{s.value}'" for s in sorted(TERMINAL)) + ")"
_S, _R = State, Role
_CENTRE = frozenset({_R.CITY, _R.DISTRICT})
_HANDLERS = frozenset({_R.TOWN, _R.VILLAGE, _R.DEPARTMENT})
_REVIEWERS = _CENTRE | {_R.TOWN}  # a town reviews what its villages did
_ON_SITE = _CENTRE | {_R.TOWN, _R.VILLAGE, _R.GRID_WORKER}
# A grid worker handles what its village/community was given (the service checks the assignee).
_FIELD_HANDLERS = _HANDLERS | {_R.GRID_WORKER}


# The clock that runs while a ticket is in a state: what cards, the overdue filter and the urgency
# sort read. States not listed run no clock of the handler's.
RUNNING_CLOCK: Mapping[State, Kind] = MappingProxyType({
    State.RECEIVED: "dispatch",
    State.RETURNED: "dispatch",
    State.DISPATCHED: "sign",
    State.SIGNED: "complete",
    State.HANDLING: "complete",
})


@dataclass(frozen=True)
class Rule:
    """One row of the table: what a move is and everything it does.

    Who and from where: ``sources`` (states), ``roles`` (levels), ``by_assignee`` (only the unit the
    ticket is assigned to; :mod:`layers.incidents.authz`). Inputs: ``requires`` (payload keys),
    ``needs_note``. Effects, applied by :func:`layers.incidents.moves.plan_move` and nothing else:
    ``target`` (None: state unchanged), ``rework`` (counts against first-time fix),
    ``unsatisfied`` (the state an unsatisfied revisit sends the ticket to, as rework),
    ``starts`` (SLA clocks started at the move: their deadlines are set on the ticket),
    ``stops`` (the clock the move meets: its deadline and whether it was met go into the event),
    ``sets`` (ticket fields written from the checked payload: see ``moves.FIELDS``),
    ``revisit_first`` (a citizen's ticket makes this move only once revisited, 100% 回访),
    ``children`` (one child ticket per payload village, dispatched to it at once).
    A move into a terminal state also stamps ``closed_at``.
    """

    name: str
    sources: frozenset[State]
    target: State | None
    roles: frozenset[Role]
    requires: tuple[str, ...] = ()  # payload keys that must be given
    needs_note: bool = False
    rework: bool = False
    title: str = ""
    by_assignee: bool = False
    unsatisfied: State | None = None
    starts: tuple[Kind, ...] = ()
    stops: Kind | None = None
    sets: tuple[str, ...] = ()
    revisit_first: bool = False
    children: bool = False


def _rule(
    name: str,
    sources: set[State] | frozenset[State],
    target: State | None,
    roles: set[Role] | frozenset[Role],
    title: str,
    **kw: Any,
) -> Rule:
    return Rule(name, frozenset(sources), target, frozenset(roles), title=title, **kw)


# A dispatch starts the handler's clocks; the assignee is the unit that then signs for it.
_DISPATCH = {"starts": ("sign", "complete", "onsite"), "sets": ("assignee", "dispatched_at")}

# The table reads best one move per line, so the formatter leaves it alone.
# fmt: off
MOVES: Mapping[str, Rule] = MappingProxyType({r.name: r for r in [
    _rule("check", {_S.RECEIVED}, None, _ON_SITE | {_R.SYSTEM}, "核实", requires=("verified",)),
    _rule("reject", {_S.RECEIVED}, _S.CLOSED, _CENTRE, "不予立案", needs_note=True),
    _rule("grab", {_S.RECEIVED}, _S.DISPATCHED, {_R.TOWN}, "抢单", requires=("assignee",), **_DISPATCH),
    _rule("dispatch", {_S.RECEIVED, _S.RETURNED}, _S.DISPATCHED, _CENTRE | {_R.SYSTEM}, "派单",
          requires=("assignee",), **_DISPATCH),
    _rule("split", {_S.DISPATCHED, _S.SIGNED}, None, {_R.TOWN}, "分单", requires=("villages",),
          by_assignee=True, children=True),
    _rule("join", {_S.SIGNED, _S.HANDLING}, None, {_R.TOWN}, "联单", requires=("units",),
          by_assignee=True, sets=("co_units",)),
    _rule("return", {_S.DISPATCHED, _S.SIGNED, _S.HANDLING}, _S.RETURNED, _HANDLERS, "返单",
          needs_note=True, by_assignee=True, starts=("dispatch",)),
    _rule("sign", {_S.DISPATCHED}, _S.SIGNED, _FIELD_HANDLERS, "签收", by_assignee=True, stops="sign"),
    _rule("start", {_S.SIGNED}, _S.HANDLING, _FIELD_HANDLERS, "开始处置", by_assignee=True),
    _rule("complete", {_S.HANDLING}, _S.COMPLETED, _FIELD_HANDLERS, "办结", needs_note=True,
          by_assignee=True, stops="complete"),
    _rule("verify_fix", {_S.COMPLETED}, None, _ON_SITE, "核查", requires=("fixed",)),
    _rule("review_pass", {_S.COMPLETED}, _S.REVIEWED, _REVIEWERS, "审核通过"),
    _rule("review_fail", {_S.COMPLETED}, _S.HANDLING, _REVIEWERS, "审核退回", needs_note=True,
          rework=True),
    _rule("revisit", {_S.REVIEWED}, _S.REVISITED, _CENTRE, "回访", requires=("satisfaction",),
          unsatisfied=_S.HANDLING, sets=("revisited", "satisfied")),
    _rule("close", {_S.REVIEWED, _S.REVISITED}, _S.CLOSED, _CENTRE, "结案", revisit_first=True),
    _rule("sign_off", OPEN, _S.SIGNED_OFF, _CENTRE, "销号", needs_note=True),
    _rule("extend", {_S.DISPATCHED, _S.SIGNED, _S.HANDLING}, None, _CENTRE, "延期",
          requires=("until",), needs_note=True, sets=("complete_due",)),
]})
# fmt: on


@dataclass(frozen=True)
class Transition:
    """The outcome of a move: the new state and the fields of its event row (the timeline)."""

    move: str
    from_state: State
    to_state: State
    role: Role
    note: str | None
    payload: Mapping[str, Any] = field(default_factory=dict)
    rework: bool = False

    def event(self) -> dict[str, Any]:
        """The event row's fields (who and when are added by the service)."""
        return {
            "move": self.move,
            "from_state": self.from_state.value,
            "to_state": self.to_state.value,
            "role": self.role.value,
            "note": self.note,
            "payload": dict(self.payload),
            "rework": self.rework,
        }


def _parse(kind: type[StrEnum], value: str, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise InvalidInput(f"unknown {what} {value!r}; use one of {allowed}") from None


def allowed_moves(state: State | str, role: Role | str) -> list[str]:
    """The moves ``role`` may make from ``state``, in table order (a new list each call)."""
    return list(_allowed(state, role))


@lru_cache(maxsize=256)
def _allowed(state: State | str, role: Role | str) -> tuple[str, ...]:
    """The table is immutable, so each (state, role) is answered once per process (every ticket
    detail asks for all six roles)."""
    st, rl = _parse(State, state, "state"), _parse(Role, role, "role")
    return tuple(r.name for r in MOVES.values() if st in r.sources and rl in r.roles)


def satisfaction_ok(value: object) -> bool:
    """Normalise a revisit answer: 1-5 (4-5 satisfied, 3 basically satisfied, 1-2 not) or words."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not 1 <= value <= 5:
            raise InvalidInput(f"satisfaction score must be 1-5, got {value}")
        return value >= 3
    words = {
        "satisfied": True,
        "满意": True,
        "基本满意": True,
        "unsatisfied": False,
        "不满意": False,
    }
    if not isinstance(value, str) or value not in words:
        raise InvalidInput(f"satisfaction must be 1-5 or satisfied/unsatisfied, got {value!r}")
    return words[value]


def _nonempty_list(value: object, key: str) -> list[str]:
    if isinstance(value, str):
        items: list[object] = [value]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        items = []
    if not items or not all(isinstance(x, str) and x for x in items):
        raise InvalidInput(f"{key} must be a non-empty list of codes, got {value!r}")
    return [str(x) for x in items]


def _aware(value: object, key: str) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInput(f"{key} must be a timezone-aware datetime, got {value!r}")
    return value


_PAYLOAD_CHECKS: dict[str, Callable[[object, str], object]] = {
    "villages": _nonempty_list,
    "units": _nonempty_list,
    "until": _aware,
}


def _check_inputs(rule: Rule, note: str | None, payload: dict[str, Any]) -> None:
    missing = [k for k in rule.requires if payload.get(k) in (None, "")]
    if rule.needs_note and not (note and note.strip()):
        missing.insert(0, "note")
    if missing:
        raise InvalidInput(
            f"move {rule.name} ({rule.title}) needs {', '.join(missing)}",
            detail={"move": rule.name, "missing": missing},
        )
    for key, check in _PAYLOAD_CHECKS.items():
        if key in rule.requires:
            payload[key] = check(payload[key], key)
    for key in ("verified", "fixed"):
        if key in rule.requires and not isinstance(payload[key], bool):
            raise InvalidInput(f"{key} must be true or false, got {payload[key]!r}")


def _refuse(st: State, rl: Role, name: str, why: str) -> IllegalMove:
    allowed = allowed_moves(st, rl)
    return IllegalMove(
        f"cannot {name} a ticket that is {st.value} as {rl.value}: {why}; "
        f"allowed: {', '.join(allowed) or 'none'}",
        detail={"state": st.value, "role": rl.value, "move": name, "allowed": allowed},
    )


def move(
    state: State | str,
    move_name: str,
    *,
    role: Role | str,
    note: str | None = None,
    **payload: Any,
) -> Transition:
    """Apply ``move_name`` to a ticket in ``state``; pure: returns the transition, stores nothing."""
    st, rl = _parse(State, state, "state"), _parse(Role, role, "role")
    rule = MOVES.get(move_name)
    if rule is None:
        raise InvalidInput(f"unknown move {move_name!r}; moves are {', '.join(MOVES)}")
    if st not in rule.sources:
        raise _refuse(
            st,
            rl,
            move_name,
            f"{move_name} starts only from {', '.join(sorted(s.value for s in rule.sources))}",
        )
    if rl not in rule.roles:
        raise _refuse(
            st,
            rl,
            move_name,
            f"{move_name} is for {', '.join(sorted(r.value for r in rule.roles))}",
        )
    payload = dict(payload)
    _check_inputs(rule, note, payload)
    target, rework = rule.target or st, rule.rework
    if rule.unsatisfied is not None:
        payload["satisfied"] = satisfaction_ok(payload["satisfaction"])
        if not payload["satisfied"]:
            target, rework = rule.unsatisfied, True  # 二次办理
    return Transition(rule.name, st, target, rl, note, MappingProxyType(payload), rework)


def blocked_moves(state: State | str, *, citizen: bool) -> frozenset[str]:
    """Moves the table allows from ``state`` that a citizen's ticket may not make yet: the
    ``revisit_first`` rows before the revisit (100% 回访; camera, sensor and patrol tickets have
    no citizen to call back)."""
    if not citizen or state == State.REVISITED:
        return frozenset()
    return frozenset(r.name for r in MOVES.values() if r.revisit_first and state in r.sources)
