"""The call's way up and back down (呼叫流程) as a table of allowed moves, like the tickets' workflow.

"启动网格呼叫要逐级把关": a grid worker's call is vetted by the grid chief (网格长), a grid chief's by the
community secretary (社区书记), a call on a city department by the town's responsible official (镇街区
分管负责同志). So a call starts one level above whoever raised it and climbs one level per approval:

    at_chief → at_community → at_town → at_department → signed → on_site → resolved

Each approval level may instead reject the call (→ rejected, reason required). A level that lets its
time run out is passed by the system: ``escalate`` moves the call one level up with the lapse on the
record; at the town (the last approver) and for a department that does not sign or arrive in time the
system can only ``flag`` it (state unchanged, the call marked overdue). The raiser may withdraw a call
still being vetted. How long each stage may take is data (``call_limits``), not a branch here.

Levels are who acts, derived from the signed-in account by the service: ``worker`` and ``grid_chief``
(grid-worker accounts; a chief is a worker registered as 网格长 on the call's grid), ``community``
(village accounts), ``town``, ``department`` and ``system``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from gis.errors import IllegalMove, InvalidInput


class State(StrEnum):
    AT_CHIEF = "at_chief"  # 待网格长把关
    AT_COMMUNITY = "at_community"  # 待社区把关
    AT_TOWN = "at_town"  # 待镇街把关
    AT_DEPARTMENT = "at_department"  # 待部门签收
    SIGNED = "signed"  # 已签收, on the way
    ON_SITE = "on_site"  # 已到场
    RESOLVED = "resolved"  # 已办结
    REJECTED = "rejected"  # 已驳回
    WITHDRAWN = "withdrawn"  # 已撤回


class Level(StrEnum):
    WORKER = "worker"  # 网格员
    GRID_CHIEF = "grid_chief"  # 网格长
    COMMUNITY = "community"  # 社区书记 (village/community account)
    TOWN = "town"  # 镇街
    DEPARTMENT = "department"  # 市直部门
    SYSTEM = "system"


STATE_NAMES = {"at_chief": "待网格长把关", "at_community": "待社区把关", "at_town": "待镇街把关",
               "at_department": "待部门签收", "signed": "已签收", "on_site": "已到场", "resolved": "已办结",
               "rejected": "已驳回", "withdrawn": "已撤回"}
LEVEL_NAMES = {"worker": "网格员", "grid_chief": "网格长", "community": "社区", "town": "镇街",
               "department": "职能部门", "system": "系统"}
TERMINAL = frozenset({State.RESOLVED, State.REJECTED, State.WITHDRAWN})
VETTING = (State.AT_CHIEF, State.AT_COMMUNITY, State.AT_TOWN)
# Where a call starts: one level above whoever raised it.
START = MappingProxyType({Level.WORKER: State.AT_CHIEF, Level.GRID_CHIEF: State.AT_COMMUNITY,
                          Level.COMMUNITY: State.AT_TOWN, Level.TOWN: State.AT_DEPARTMENT})
# The limit (``call_limits.stage``) that runs while a call waits in a state.
STAGE = MappingProxyType({State.AT_CHIEF: "grid_chief", State.AT_COMMUNITY: "community", State.AT_TOWN: "town",
                          State.AT_DEPARTMENT: "sign", State.SIGNED: "onsite"})


@dataclass(frozen=True)
class Rule:
    """One row: ``move`` from ``source`` to ``target`` (None: unchanged) by one of ``levels``."""

    move: str
    source: State
    target: State | None
    levels: frozenset[Level]
    title: str
    needs_note: bool = False
    requires: tuple[str, ...] = ()


_S, _L = State, Level


def _rules(move: str, title: str, pairs: Sequence[tuple[State, State | None, Level]], **kw: Any) -> list[Rule]:
    return [Rule(move, source, target, frozenset({level}), title, **kw) for source, target, level in pairs]


_ESCALATE = [(_S.AT_CHIEF, _S.AT_COMMUNITY, _L.SYSTEM), (_S.AT_COMMUNITY, _S.AT_TOWN, _L.SYSTEM)]
_FLAG = [(_S.AT_TOWN, None, _L.SYSTEM), (_S.AT_DEPARTMENT, None, _L.SYSTEM), (_S.SIGNED, None, _L.SYSTEM)]
_VETTERS = [(_S.AT_CHIEF, _L.GRID_CHIEF), (_S.AT_COMMUNITY, _L.COMMUNITY), (_S.AT_TOWN, _L.TOWN)]
_UP = {_S.AT_CHIEF: _S.AT_COMMUNITY, _S.AT_COMMUNITY: _S.AT_TOWN, _S.AT_TOWN: _S.AT_DEPARTMENT}

# fmt: off
RULES: tuple[Rule, ...] = (
    *_rules("approve", "把关通过", [(s, _UP[s], lv) for s, lv in _VETTERS]),
    *_rules("reject", "驳回", [(s, _S.REJECTED, lv) for s, lv in _VETTERS], needs_note=True),
    *_rules("escalate", "超时自动上报", _ESCALATE, needs_note=True),
    *_rules("flag", "超时督办", _FLAG, needs_note=True),
    *_rules("sign", "部门签收", [(_S.AT_DEPARTMENT, _S.SIGNED, _L.DEPARTMENT)]),
    *_rules("arrive", "到场报到", [(_S.SIGNED, _S.ON_SITE, _L.DEPARTMENT)], requires=("lon", "lat")),
    *_rules("resolve", "办结", [(_S.ON_SITE, _S.RESOLVED, _L.DEPARTMENT)], needs_note=True),
    *[Rule("withdraw", s, _S.WITHDRAWN, frozenset({_L.WORKER, _L.GRID_CHIEF, _L.COMMUNITY, _L.TOWN}), "撤回",
           needs_note=True) for s in VETTING],
)
# fmt: on
MOVES = tuple(dict.fromkeys(r.move for r in RULES))


@dataclass(frozen=True)
class Transition:
    move: str
    from_state: State
    to_state: State
    level: Level
    note: str | None
    payload: Mapping[str, Any] = field(default_factory=dict)


def _parse(kind: type[StrEnum], value: str, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise InvalidInput(f"unknown {what} {value!r}; use one of {', '.join(m.value for m in kind)}") from None


def allowed_moves(state: State | str, level: Level | str) -> list[str]:
    """The moves ``level`` may make from ``state``, in table order."""
    st, lv = _parse(State, state, "state"), _parse(Level, level, "level")
    return list(dict.fromkeys(r.move for r in RULES if r.source is st and lv in r.levels))


def _rule(state: State, name: str) -> Rule | None:
    return next((r for r in RULES if r.move == name and r.source is state), None)


def move(state: State | str, name: str, *, level: Level | str, note: str | None = None,
         **payload: Any) -> Transition:
    """Apply ``name`` to a call in ``state`` as ``level``; pure: stores nothing."""
    st, lv = _parse(State, state, "state"), _parse(Level, level, "level")
    if name not in MOVES:
        raise InvalidInput(f"unknown move {name!r}; moves are {', '.join(MOVES)}")
    rule = _rule(st, name)
    if rule is None or lv not in rule.levels:
        allowed = allowed_moves(st, lv)
        why = (f"{name} does not start from {st.value} ({STATE_NAMES[st.value]})" if rule is None
               else f"at {STATE_NAMES[st.value]} only {', '.join(LEVEL_NAMES[x.value] for x in rule.levels)} "
                    f"may {name}")
        raise IllegalMove(f"cannot {name} a call that is {st.value} as {lv.value}: {why}; "
                          f"allowed: {', '.join(allowed) or 'none'}",
                          detail={"state": st.value, "level": lv.value, "move": name, "allowed": allowed})
    missing = [k for k in rule.requires if payload.get(k) in (None, "")]
    if rule.needs_note and not (note and note.strip()):
        missing.insert(0, "note")
    if missing:
        raise InvalidInput(f"move {name} ({rule.title}) needs {', '.join(missing)}",
                           detail={"move": name, "missing": missing})
    return Transition(name, st, rule.target or st, lv, note, MappingProxyType(dict(payload)))
