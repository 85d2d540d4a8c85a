"""The simulated week on the demo city: volumes, states, events consistent with the service path."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text

from layers.incidents import kpis as K
from layers.incidents import layer as L
from layers.incidents.simulate import simulate

END = datetime(2026, 3, 31, 20, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_a_simulated_week_is_realistic_and_consistent(demo_session):
    s = demo_session
    out = simulate(s, days=7, per_day=60, seed=7, end=END)
    assert out.tickets == 420 and out.events > 420 * 5
    assert out.by_state.get("closed", 0) > 200  # most of a week's work is done
    open_ = sum(v for k, v in out.by_state.items() if k not in ("closed", "signed_off"))
    assert open_ > 20 and out.cards["red"] > 0  # some are still open, some overdue
    bad = s.execute(
        text("""
        SELECT count(*) FROM tickets t LEFT JOIN grids g ON g.code = t.grid_code AND g.valid_to IS NULL
        WHERE g.id IS NULL OR NOT ST_Covers(g.geom, t.geom) OR g.town_code <> t.town_code""")
    ).scalar()
    assert bad == 0  # every point lies in the grid whose codes it froze
    # each ticket's events chain: every from_state is the previous to_state
    broken = s.execute(
        text("""
        SELECT count(*) FROM (
            SELECT from_state, lag(to_state) OVER (PARTITION BY ticket_id ORDER BY at, id) AS prev, move
            FROM ticket_events) e
        WHERE move <> 'receive' AND from_state IS DISTINCT FROM prev""")
    ).scalar()
    assert broken == 0
    states = dict(s.execute(text("SELECT state, count(*) FROM tickets GROUP BY state")).all())
    assert states == out.by_state
    reworked = s.execute(text("SELECT count(*) FROM tickets WHERE rework_count > 0")).scalar()
    assert 5 <= reworked <= 80
    unrevisited = s.execute(
        text("""SELECT count(*) FROM tickets WHERE state = 'closed'
        AND channel IN ('hotline', 'app', 'wechat') AND NOT revisited""")
    ).scalar()
    rejected = s.execute(
        text("""SELECT count(*) FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id
        WHERE e.move = 'reject' AND t.channel IN ('hotline', 'app', 'wechat')""")
    ).scalar()
    assert unrevisited == rejected  # citizens' tickets close only after a revisit (or rejection)
    table = K.ranking(s, "town", month="2026-03", as_of=END)
    assert len(table) > 5 and table["rank"].tolist() == list(range(1, len(table) + 1))
    assert (
        table.received.sum()
        == 420 - s.execute(text("SELECT count(*) FROM tickets WHERE town_code IS NULL")).scalar()
    )
    assert 0.5 < table.closure_rate.astype(float).mean() < 1.0
    grids = L.grid_counts(s)
    assert grids.open_count.sum() == open_ and set(grids.worst_card) <= {"ok", "yellow", "red"}
    assert (grids.worst_card == "red").sum() > 0
