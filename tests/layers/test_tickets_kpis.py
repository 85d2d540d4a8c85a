"""KPIs over the event table for a small month, against numbers computed by hand."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from gis.errors import InvalidInput
from layers.incidents import kpis as K
from layers.incidents.moves import revisit
from tests.layers.test_tickets_service import TOWN, at, mv, new, tiny, walk_a  # noqa: F401

AS_OF = at(10, 12)


@pytest.fixture
def month(tiny):  # noqa: F811 - the fixture imported above
    """Five tickets of March 2026 in the tiny town, plus a duplicate and two split children.

    A (hotline, 0102 sanitation): signed on time, reworked twice, completed on time, closed;
       revisits 2 (unsatisfied) and 5.
    B (app, 0401 housing): grabbed, signed late (13:00 > 12:05), returned, re-dispatched, extended,
       completed on time, revisited 4, closed.
    C (patrol, 0507 urban): signed on time, signed off.
    D (wechat, 0102 sanitation): rejected at intake.
    E: duplicate of A (not counted). F (camera, 1202 police): dispatched, never signed, overdue.
    """
    s = tiny
    a = walk_a(s)
    e = new(s, at(2, 12), x=120, y=410)  # A is still open (reviewed)
    assert e.duplicate_of == a.id
    revisit(s, a.id, actor="回访员", satisfaction=5, at=at(3, 10, 30))
    mv(s, a, "close", "district", at(3, 10, 40))
    b = new(s, at(2, 10), category="0401", channel="app", x=700, y=300)
    mv(s, b, "grab", "town", at(2, 10, 5), assignee=TOWN)
    mv(s, b, "sign", "town", at(2, 13))
    mv(s, b, "return", "town", at(2, 14), note="需住建部门处置")
    mv(s, b, "dispatch", "district", at(2, 14, 30), assignee="housing")
    mv(s, b, "sign", "department", at(2, 15))
    mv(s, b, "start", "department", at(2, 15, 30))
    mv(s, b, "extend", "district", at(3, 9), note="需封闭施工", until=at(4, 18).isoformat())
    mv(s, b, "complete", "department", at(4, 12), note="已回填")
    mv(s, b, "review_pass", "district", at(4, 14))
    revisit(s, b.id, actor="回访员", satisfaction=4, at=at(4, 15))
    mv(s, b, "close", "district", at(4, 16))
    c = new(s, at(2, 11), category="0507", channel="patrol", x=100, y=100)
    mv(s, c, "dispatch", "district", at(2, 11, 10), assignee=TOWN)
    mv(s, c, "sign", "town", at(2, 11, 20))
    mv(s, c, "sign_off", "district", at(2, 12), note="客观无法解决，经批准销号")
    d = new(s, at(2, 11, 30), channel="wechat", x=300, y=400)
    mv(s, d, "reject", "district", at(2, 11, 40), note="现场无此问题")
    f = new(s, at(2, 14), category="1202", channel="camera", x=800, y=500)
    mv(s, f, "dispatch", "district", at(2, 14, 10), assignee="police")
    new(s, at(1, 9, month=4), x=800, y=100)  # April: outside the period
    return s


def test_town_kpis_match_hand_computed_numbers(month):
    row = K.kpis(month, "town", month="2026-03", as_of=AS_OF).iloc[0]
    assert (row.code, row["name"]) == (TOWN, "圣城街道")
    counts = {c: int(row[c]) for c in K.COUNTS}
    assert counts == {
        "received": 5,
        "rejected": 1,
        "accepted": 4,
        "dispatched": 4,
        "signed": 3,
        "completed": 2,
        "closed": 2,
        "signed_off": 1,
        "reworked": 1,
        "revisits": 3,
        "satisfied": 2,
    }
    # sign: A and C on time, B late, F never signed and overdue -> 2/4
    # completion: A and B on time (B's due extended), F overdue, C signed off -> 2/3
    # first-time fix: A reworked, B not -> 1/2; satisfaction 2 of 3 revisits; closure (2+1)/4
    assert [row[r] for r in K.RATES] == [0.5, 0.6667, 0.5, 0.6667, 0.75]


def test_department_and_grid_levels_and_counts_by_category(month):
    frame = K.kpis(month, "department", month="2026-03", as_of=AS_OF).set_index("code")
    assert frame.received.to_dict() == {"housing": 1, "police": 1, "sanitation": 2, "urban": 1}
    assert frame.loc["sanitation", "closure_rate"] == 1.0  # A closed; D rejected is not accepted
    assert frame.loc["police", "timely_sign_rate"] == 0.0
    assert frame.loc["police", "first_time_fix_rate"] is None
    assert frame.loc["housing", "name"] == "住房和城乡建设局"
    grid = K.kpis(month, "grid", month="2026-03", as_of=AS_OF, code="370783001002001")
    assert grid.received.tolist() == [2]  # B and F in the east grid
    cats = K.counts_by_category(month, "town", month="2026-03", as_of=AS_OF)
    assert cats[["category", "n"]].values.tolist() == [
        ["0102", 2],
        ["0401", 1],
        ["0507", 1],
        ["1202", 1],
    ]


def test_recomputing_as_of_an_earlier_moment(month):
    row = K.kpis(month, "town", month="2026-03", as_of=at(2, 12, 30)).iloc[0]
    # by 12:30 on 2 March: A signed on time, B not yet signed but overdue (12:05), C on time;
    # D rejected; F not received yet -> sign 2/3; nothing closed, C signed off: closure 1/3
    assert (row.received, row.timely_sign_rate, row.closed, row.signed_off, row.closure_rate) == (
        4,
        0.6667,
        0,
        1,
        0.3333,
    )


def test_ranking_and_csv(month):
    table = K.ranking(month, "department", month="2026-03", as_of=AS_OF)
    assert table["rank"].tolist() == [1, 2, 3, 4]
    # urban (C): sign 1, closure 1 (signed off), other rates None -> 1.0
    # housing (B): sign 0 (first sign late), completion 1, fix 1, satisfaction 1, closure 1 -> 0.8
    # sanitation (A; D rejected): sign 1, completion 1, fix 0, satisfaction 1/2, closure 1 -> 0.7
    # police (F): sign 0, completion 0, closure 0 -> 0.0
    assert table.code.tolist() == ["urban", "housing", "sanitation", "police"]
    assert table.score.tolist() == [1.0, 0.8, 0.7, 0.0]
    data = K.to_csv(table)
    assert data.startswith("\ufeff".encode()) and "住房和城乡建设局" in data.decode("utf-8-sig")
    back = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", dtype={"code": str})
    assert back.code.tolist() == table.code.tolist()
    with pytest.raises(InvalidInput, match="YYYY-MM"):
        K.kpis(month, "town", month="March")
    with pytest.raises(InvalidInput, match="town or department"):
        K.ranking(month, "grid", month="2026-03")
