"""Who acts on a ticket, and whether *this* account may make *this* move on *this* ticket (按账号授权).

The workflow table (:mod:`layers.incidents.workflow`) says which level may make a move; this module
says at which level an account acts, and whether the account's own town, village, department or
grids are the ones the ticket concerns. It is the one place both questions are answered: the API's
write routes, the ticket detail's ``actor_role`` / ``my_moves`` and the tests all read it.

- The workflow role comes from the signed-in account (:data:`WORKFLOW_ROLE`): city, district, town,
  village, department and grid_worker act as the workflow role of the same name, provided the
  account carries what scopes it (an area of the right level, a department, grids). Planner, analyst
  and viewer accounts make no moves. A body ``role`` may repeat the account's role, never choose
  another. In the local demo (sign-in off) the body's role is the demo's role switch, default district.
- Area: the caller only reaches tickets it sees (``Scope``; another area's ticket is a 404). On top
  of that, handling moves (sign, start, complete, return, split, join) are the assignee's: a town
  signs what was dispatched to that town, not what was dispatched to a department in it; a town
  grabs only for itself; a district dispatches only inside its district (or to a department); a town
  reviews what its villages did, not its own work (the district reviews that).
- Time: a move happens when the server receives it. ``at`` is an import path for city admins
  (bringing in past events from another system), never in the future.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol

from gis.errors import Forbidden, InvalidInput
from layers.accounts.scope import Scope
from layers.incidents.workflow import MOVES, Role, allowed_moves

# Account role → workflow role (one mapping). Roles not listed (planner, analyst, viewer) make no moves.
WORKFLOW_ROLE: Mapping[str, Role] = MappingProxyType({
    "city": Role.CITY,
    "district": Role.DISTRICT,
    "town": Role.TOWN,
    "village": Role.VILLAGE,
    "department": Role.DEPARTMENT,
    "grid_worker": Role.GRID_WORKER,
})
DEMO_ROLE = Role.DISTRICT  # sign-in off and no role in the body
HANDLING = frozenset(r.name for r in MOVES.values() if r.by_assignee)  # the assignee's moves
REVIEW = frozenset({"review_pass", "review_fail"})
CENTRE_ONLY = frozenset({Role.CITY, Role.DISTRICT})
CLOCK_SKEW = timedelta(minutes=1)


class TicketFacts(Protocol):
    """What the checks read of a ticket (an ORM ``Ticket``)."""

    id: int
    state: str
    town_code: str | None
    village_code: str | None
    grid_code: str | None
    assignee: str | None
    duplicate_of: int | None


@dataclass(frozen=True)
class Actor:
    """The caller as the workflow sees it: who, at which level, within which scope."""

    user: str
    role: Role
    scope: Scope

    @property
    def whole_city(self) -> bool:
        """City accounts and the demo act anywhere they see; no per-ticket check narrows them."""
        return self.scope.demo_mode or self.role is Role.CITY

    @property
    def may_backdate(self) -> bool:
        """Only a city admin may give ``at`` (the import path for past events)."""
        return self.scope.allows("admin")


def workflow_role(scope: Scope) -> Role | None:
    """The account's workflow role, or None (planner/analyst/viewer, or an account missing the area,
    department or grids its role is scoped by: it acts nowhere rather than everywhere)."""
    if scope.demo_mode:
        return DEMO_ROLE
    role = WORKFLOW_ROLE.get(scope.role)
    carries = {
        Role.DISTRICT: scope.area_code, Role.TOWN: scope.area_code, Role.VILLAGE: scope.area_code,
        Role.DEPARTMENT: scope.department, Role.GRID_WORKER: scope.grid_codes,
    }
    if role is None or (role in carries and not carries[role]):
        return None
    return role


def actor_of(scope: Scope) -> Actor | None:
    """The caller as an :class:`Actor`, or None when its account makes no moves (no error)."""
    role = workflow_role(scope)
    return None if role is None else Actor(scope.user, role, scope)


def acting(scope: Scope, claimed: str | None = None) -> Actor:
    """The actor of a write. Signed in: the account's role; a ``claimed`` (body) role must equal it
    (403 otherwise). Demo: the claimed role (the demo's role switch), default district."""
    if scope.demo_mode:
        if not claimed:
            return Actor(scope.user, DEMO_ROLE, scope)
        try:
            return Actor(scope.user, Role(claimed), scope)
        except ValueError:
            raise InvalidInput(
                f"unknown role {claimed!r}; use one of {', '.join(r.value for r in Role)}"
            ) from None
    role = workflow_role(scope)
    if role is None:
        raise Forbidden(
            f"the {scope.role} account makes no ticket moves",
            detail={"account_role": scope.role, "actor_role": None},
        )
    if claimed and claimed != role.value:
        raise Forbidden(
            f"you act as {role.value} (your account's role), not as {claimed}; "
            "the workflow role comes from the signed-in account",
            detail={"account_role": scope.role, "actor_role": role.value, "claimed": claimed},
        )
    return Actor(scope.user, role, scope)


def when(actor: Actor, at: datetime | None, *, now: datetime | None = None) -> datetime | None:
    """The time a write is recorded at: the server's (None) unless a city admin imports a past event."""
    if at is None:
        return None
    if not actor.may_backdate:
        raise Forbidden(
            "at: a move is recorded at the server's time; only a city admin may give a time, "
            "to import past events",
            detail={"actor_role": actor.role.value},
        )
    now = now or datetime.now(UTC)
    if at.utcoffset() is not None and at > now + CLOCK_SKEW:
        raise InvalidInput(f"at {at.isoformat()} is in the future; an import brings in past events")
    return at


def _assignee_is_me(actor: Actor, t: TicketFacts) -> bool:
    scope = actor.scope
    if actor.role in (Role.TOWN, Role.VILLAGE):
        return t.assignee is not None and t.assignee == scope.area_code
    if actor.role is Role.DEPARTMENT:
        return t.assignee is not None and t.assignee == scope.department
    if actor.role is Role.GRID_WORKER:  # the village/community was given it, in one of my grids
        return (t.assignee is not None and t.assignee == t.village_code
                and t.grid_code in scope.grid_codes)
    return False


def refusal(actor: Actor, t: TicketFacts, move_name: str) -> str | None:
    """Why this actor may not make ``move_name`` on this (visible) ticket, or None when it may.
    The workflow table's own refusal (state, level) is not repeated here: that stays a 409."""
    if actor.whole_city or actor.role is Role.DISTRICT:
        return None  # the scope already keeps a district to its own district's tickets
    if move_name in HANDLING and not _assignee_is_me(actor, t):
        return f"ticket {t.id} is assigned to {t.assignee or 'no unit yet'}, not to you"
    if move_name == "grab" and (actor.role is not Role.TOWN or t.town_code != actor.scope.area_code):
        return f"a town grabs tickets in its own town only (ticket {t.id} is in {t.town_code})"
    if move_name in REVIEW and actor.role is Role.TOWN:
        area = actor.scope.area_code or ""
        if not (t.assignee and t.assignee != area and t.assignee.startswith(area[:9])):
            return "a town reviews what its villages did; its own work is reviewed by the district"
    return None


def authorize(actor: Actor, t: TicketFacts, move_name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Raise Forbidden unless the actor may make this move on this ticket with this payload; returns
    the payload (a grab's assignee is the grabbing town itself, filled in when not given)."""
    why = refusal(actor, t, move_name) if move_name in MOVES else None
    if why:
        raise Forbidden(why, detail={"move": move_name, "actor_role": actor.role.value})
    payload = dict(payload)
    if actor.whole_city:
        return payload
    area = actor.scope.area_code or ""
    if move_name == "grab" and actor.role is Role.TOWN:
        given = payload.get("assignee")
        if given not in (None, "", area):
            raise Forbidden(f"a town grabs a ticket for itself ({area}), not for {given}",
                            detail={"move": move_name, "assignee": given})
        payload["assignee"] = area
    if move_name == "dispatch" and actor.role is Role.DISTRICT:
        target = str(payload.get("assignee") or "")
        if target.isdigit() and not target.startswith(area[:6]):
            raise Forbidden(f"a district dispatches inside its own district ({area}), not to {target}",
                            detail={"move": move_name, "assignee": target})
    return payload


def may_place(actor: Actor) -> None:
    """Placing an unplaced report on the map is the command centre's desk work (city or district)."""
    if not actor.scope.demo_mode and actor.role not in CENTRE_ONLY:
        raise Forbidden(f"placing a ticket is the command centre's work, not the {actor.role.value}'s",
                        detail={"actor_role": actor.role.value})


def my_moves(actor: Actor | None, t: TicketFacts, *, blocked: frozenset[str] = frozenset()) -> list[str]:
    """The moves this actor may make on this ticket now (``blocked``: refused by a service rule,
    e.g. closing a citizen's ticket before its revisit)."""
    if actor is None or t.duplicate_of is not None:
        return []
    return [m for m in allowed_moves(t.state, actor.role)
            if m not in blocked and refusal(actor, t, m) is None]
