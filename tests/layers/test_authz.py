"""The account → workflow role mapping and the per-ticket checks, without a database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from gis.errors import Forbidden, InvalidInput
from layers.accounts.scope import Scope
from layers.incidents import authz as A
from layers.incidents.workflow import Role

DISTRICT, OTHER_DISTRICT = "370783000000", "370782000000"
TOWN, TOWN_B, VILLAGE = "370783001000", "370783002000", "370783001201"


@dataclass
class T:
    id: int = 1
    state: str = "received"
    town_code: str | None = TOWN
    assignee: str | None = None
    duplicate_of: int | None = None


def scope(role: str, **kw) -> Scope:
    return Scope.for_role(role, user=f"u-{role}", **kw)


def test_each_account_role_maps_to_one_workflow_role_or_none():
    assert A.workflow_role(scope("city")) is Role.CITY
    assert A.workflow_role(scope("district", area_code=DISTRICT)) is Role.DISTRICT
    assert A.workflow_role(scope("town", area_code=TOWN)) is Role.TOWN
    assert A.workflow_role(scope("village", area_code=VILLAGE)) is Role.VILLAGE
    assert A.workflow_role(scope("department", department="water")) is Role.DEPARTMENT
    assert A.workflow_role(scope("grid_worker", grid_codes=[VILLAGE + "001"])) is Role.GRID_WORKER
    for role in ("planner", "analyst", "viewer"):
        assert A.workflow_role(scope(role)) is None
    assert A.workflow_role(scope("town")) is None  # a town account without its town acts nowhere
    assert A.workflow_role(Scope.demo()) is Role.DISTRICT


def test_the_body_may_repeat_the_role_never_choose_it():
    town = scope("town", area_code=TOWN)
    assert A.acting(town, "town").role is Role.TOWN and A.acting(town).role is Role.TOWN
    with pytest.raises(Forbidden, match="not as city"):
        A.acting(town, "city")
    with pytest.raises(Forbidden, match="makes no ticket moves"):
        A.acting(scope("planner"), "district")
    assert A.acting(Scope.demo(), "town").role is Role.TOWN  # the demo's role switch
    with pytest.raises(InvalidInput):
        A.acting(Scope.demo(), "emperor")


def test_a_district_dispatches_inside_its_district_only():
    district = A.acting(scope("district", area_code=DISTRICT))
    assert A.authorize(district, T(), "dispatch", {"assignee": TOWN}) == {"assignee": TOWN}
    assert A.authorize(district, T(), "dispatch", {"assignee": "water"}) == {"assignee": "water"}
    with pytest.raises(Forbidden, match="inside its own district"):
        A.authorize(district, T(), "dispatch", {"assignee": OTHER_DISTRICT[:6] + "001000"})
    city = A.acting(scope("city"))
    assert A.authorize(city, T(), "dispatch", {"assignee": "370782001000"})


def test_units_act_on_what_is_theirs():
    town, village = A.acting(scope("town", area_code=TOWN)), A.acting(scope("village", area_code=VILLAGE))
    assert A.my_moves(town, T()) == ["check", "grab"]
    assert A.my_moves(town, T(town_code=TOWN_B)) == ["check"]
    assert A.my_moves(town, T(state="dispatched", assignee=TOWN)) == ["split", "return", "sign"]
    assert A.my_moves(town, T(state="dispatched", assignee="water")) == []
    assert A.my_moves(village, T(state="dispatched", assignee=VILLAGE)) == ["return", "sign"]
    assert A.my_moves(town, T(state="completed", assignee=VILLAGE)) == ["verify_fix", "review_pass", "review_fail"]
    assert A.my_moves(town, T(state="completed", assignee=TOWN)) == ["verify_fix"]
    assert A.my_moves(town, T(duplicate_of=7)) == []
    assert A.my_moves(None, T()) == []


def test_only_a_city_admin_gives_a_past_time():
    past, now = datetime(2026, 3, 2, 9, tzinfo=UTC), datetime(2026, 3, 3, 9, tzinfo=UTC)
    assert A.when(A.acting(scope("city")), past, now=now) == past
    assert A.when(A.acting(scope("town", area_code=TOWN)), None) is None
    with pytest.raises(Forbidden, match="server's time"):
        A.when(A.acting(scope("district", area_code=DISTRICT)), past, now=now)
    with pytest.raises(InvalidInput, match="future"):
        A.when(A.acting(scope("city")), now + timedelta(hours=1), now=now)
