"""The workflow table: the main line, the five moves, rework, sign-off and refusals."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from gis.errors import IllegalMove, InvalidInput
from layers.incidents.workflow import MOVES, OPEN, State, Transition, allowed_moves, move


def run(state: str, *steps: tuple) -> list[Transition]:
    """Apply (move, role, kwargs) steps in order, feeding each new state to the next."""
    out = []
    for name, role, kwargs in steps:
        t = move(state, name, role=role, **kwargs)
        out.append(t)
        state = t.to_state
    return out


def test_main_line_from_dispatch_to_close():
    steps = run(
        "received",
        ("check", "grid_worker", {"verified": True}),
        ("dispatch", "district", {"assignee": "370783001000"}),
        ("sign", "town", {}),
        ("start", "town", {}),
        ("complete", "town", {"note": "已清运"}),
        ("verify_fix", "grid_worker", {"fixed": True}),
        ("review_pass", "district", {}),
        ("revisit", "district", {"satisfaction": 5}),
        ("close", "district", {}),
    )
    assert [t.to_state for t in steps] == [
        "received",
        "dispatched",
        "signed",
        "handling",
        "completed",
        "completed",
        "reviewed",
        "revisited",
        "closed",
    ]
    assert not any(t.rework for t in steps)
    assert steps[1].payload == {"assignee": "370783001000"}
    assert steps[-2].payload == {"satisfaction": 5, "satisfied": True}


def test_grab_by_a_town():
    t = move("received", "grab", role="town", assignee="370783101000")
    assert (t.from_state, t.to_state, t.role) == ("received", "dispatched", "town")
    with pytest.raises(IllegalMove):
        move("received", "grab", role="district", assignee="370783101000")


def test_split_and_join_keep_the_state_and_record_targets():
    t = move("signed", "split", role="town", villages=["370783101201", "370783101202"])
    assert t.to_state == "signed" and t.payload["villages"] == ["370783101201", "370783101202"]
    t = move("handling", "join", role="town", units="water")
    assert t.to_state == "handling" and t.payload["units"] == ["water"]
    with pytest.raises(InvalidInput, match="non-empty"):
        move("signed", "split", role="town", villages=[])


def test_return_goes_up_and_the_district_dispatches_again():
    returned = move("handling", "return", role="department", note="涉及多部门，需区级牵头")
    assert returned.to_state == "returned"
    again = move(returned.to_state, "dispatch", role="district", assignee="housing")
    assert again.to_state == "dispatched"
    with pytest.raises(InvalidInput, match="needs note"):
        move("handling", "return", role="town")


def test_review_fail_is_rework():
    t = move("completed", "review_fail", role="district", note="照片与位置不符")
    assert (t.to_state, t.rework) == ("handling", True)


@pytest.mark.parametrize(
    ("answer", "satisfied"),
    [
        (5, True),
        (4, True),
        (3, True),
        (2, False),
        (1, False),
        ("satisfied", True),
        ("unsatisfied", False),
        ("不满意", False),
        ("基本满意", True),
    ],
)
def test_revisit_outcomes(answer, satisfied):
    t = move("reviewed", "revisit", role="city", satisfaction=answer)
    assert t.payload["satisfied"] is satisfied
    # Unsatisfied goes back for a second handling (二次办理), counted as rework.
    assert (t.to_state, t.rework) == (("revisited", False) if satisfied else ("handling", True))


@pytest.mark.parametrize("bad", [0, 6, "so-so", None])
def test_revisit_refuses_bad_answers(bad):
    with pytest.raises(InvalidInput):
        move("reviewed", "revisit", role="district", satisfaction=bad)


def test_sign_off_from_every_open_state_and_only_from_them():
    for state in OPEN:
        t = move(state, "sign_off", role="district", note="客观原因无法解决，经区领导审批销号")
        assert t.to_state == "signed_off"
    for state in ("closed", "signed_off"):
        with pytest.raises(IllegalMove):
            move(state, "sign_off", role="city", note="x")
    with pytest.raises(IllegalMove):
        move("handling", "sign_off", role="town", note="x")
    with pytest.raises(InvalidInput, match="note"):
        move("handling", "sign_off", role="city")


def test_extend_needs_an_aware_datetime_and_a_note():
    until = datetime(2026, 3, 13, 17, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    t = move("handling", "extend", role="city", note="疑难事项，同意延期", until=until)
    assert t.to_state == "handling" and t.payload["until"] == until
    with pytest.raises(InvalidInput, match="timezone-aware"):
        move("handling", "extend", role="city", note="ok", until=datetime(2026, 3, 13))
    with pytest.raises(InvalidInput, match="needs note, until"):
        move("handling", "extend", role="city")


def test_close_without_revisit_for_system_tickets_and_reject_at_intake():
    assert move("reviewed", "close", role="district").to_state == "closed"
    t = move("received", "reject", role="district", note="重复工单")
    assert t.to_state == "closed"


def test_illegal_move_lists_the_allowed_ones():
    with pytest.raises(IllegalMove) as err:
        move("received", "sign", role="town")
    assert err.value.detail == {
        "state": "received",
        "role": "town",
        "move": "sign",
        "allowed": ["check", "grab"],
    }
    assert "allowed: check, grab" in err.value.message


def test_wrong_role_is_an_illegal_move():
    with pytest.raises(IllegalMove, match="review_pass is for city, district, town") as err:
        move("completed", "review_pass", role="department")
    assert err.value.detail["allowed"] == []


def test_unknown_names_are_invalid_input():
    with pytest.raises(InvalidInput, match="unknown move"):
        move("received", "teleport", role="city")
    with pytest.raises(InvalidInput, match="unknown state"):
        move("lost", "close", role="city")
    with pytest.raises(InvalidInput, match="unknown role"):
        allowed_moves("received", "mayor")


def test_check_and_verify_fix_require_booleans():
    with pytest.raises(InvalidInput, match="needs verified"):
        move("received", "check", role="system")
    with pytest.raises(InvalidInput, match="true or false"):
        move("completed", "verify_fix", role="grid_worker", fixed="yes")


def test_allowed_moves_per_role():
    assert allowed_moves("received", "district") == ["check", "reject", "dispatch", "sign_off"]
    assert allowed_moves("dispatched", "department") == ["return", "sign"]
    assert allowed_moves("signed", "town") == ["split", "join", "return", "start"]
    assert allowed_moves("closed", "city") == []
    assert allowed_moves("received", "grid_worker") == ["check"]


def test_table_is_consistent():
    # Every state is reachable and every non-terminal state has a way forward.
    targets = {r.target for r in MOVES.values() if r.target} | {State.RECEIVED, State.HANDLING}
    assert targets == set(State)
    for state in OPEN:
        assert any(state in r.sources and r.target not in (None, state) for r in MOVES.values())


def test_event_fields():
    t = move("dispatched", "sign", role="village")
    assert t.event() == {
        "move": "sign",
        "from_state": "dispatched",
        "to_state": "signed",
        "role": "village",
        "note": None,
        "payload": {},
        "rework": False,
    }
