"""SLA clocks against hand-computed datetimes.

Working hours are 08:30-12:00 (3.5 h) and 13:30-17:30 (4 h), 7.5 h a day, Asia/Shanghai.
Holiday facts used below, as chinese-calendar 1.11 states them:
- National Day 2026: Oct 1-7 off; Sun Sep 20 and Sat Oct 10 are make-up working days; Oct 8-9 work.
- Spring Festival 2026: Feb 15-23 off; Sat Feb 14 and Sat Feb 28 are make-up working days.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from gis.errors import CalendarNotCovered, InvalidInput
from layers.incidents import sla
from layers.incidents.sla import (
    WorkSchedule,
    add_urgent_hours,
    add_working_days,
    add_working_hours,
    card_state,
    clock_of,
    deadline,
    working_hours_between,
)

SH = ZoneInfo("Asia/Shanghai")


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=SH)


def test_calendar_facts_the_tests_rely_on():
    assert [sla.is_workday(at(2026, 10, d).date()) for d in range(1, 11)] == [False] * 7 + [
        True,
        True,
        True,
    ]
    assert sla.is_workday(at(2026, 9, 20).date())  # Sunday make-up day
    assert sla.is_workday(at(2026, 2, 14).date()) and sla.is_workday(at(2026, 2, 28).date())
    assert not any(sla.is_workday(at(2026, 2, d).date()) for d in range(15, 24))


def test_working_hours_cross_a_weekend():
    # Fri 2026-03-06 16:00 + 4 h: Fri 16:00-17:30 uses 1.5 h; Sat/Sun off; Mon 08:30 + 2.5 h = 11:00.
    assert add_working_hours(at(2026, 3, 6, 16), 4) == at(2026, 3, 9, 11)


def test_working_hours_accept_any_timezone():
    # 08:00 UTC is 16:00 in Shanghai: the same case as above; the answer comes back in Shanghai.
    result = add_working_hours(datetime(2026, 3, 6, 8, tzinfo=UTC), 4)
    assert result == at(2026, 3, 9, 11) and result.tzinfo == SH


def test_working_hours_cross_national_day_2026():
    # Wed Sep 30 16:30 + 7.5 h: Sep 30 gives 1 h (to 17:30); Oct 1-7 off; Thu Oct 8 08:30-12:00
    # gives 3.5 h (4.5 total); the last 3 h run 13:30-16:30.
    assert add_working_hours(at(2026, 9, 30, 16, 30), 7.5) == at(2026, 10, 8, 16, 30)


def test_working_hours_on_a_make_up_sunday():
    # Sat Sep 19 10:00 is a rest day; Sun Sep 20 is a make-up working day: 08:30 + 2 h = 10:30.
    assert add_working_hours(at(2026, 9, 19, 10), 2) == at(2026, 9, 20, 10, 30)


def test_working_hours_start_at_night():
    # Tue 2026-03-10 22:00: nothing counts until Wed 08:30; + 1 h = 09:30.
    assert add_working_hours(at(2026, 3, 10, 22), 1) == at(2026, 3, 11, 9, 30)


def test_working_hours_start_at_lunch_and_stop_at_noon():
    # 12:30 is lunch: counting starts 13:30, + 1 h = 14:30.
    assert add_working_hours(at(2026, 3, 10, 12, 30), 1) == at(2026, 3, 10, 14, 30)
    # 11:00 + 1 h ends exactly at 12:00: the deadline stays at noon, not 13:30.
    assert add_working_hours(at(2026, 3, 10, 11), 1) == at(2026, 3, 10, 12)
    # 11:00 + 1.5 h: 1 h to noon, 0.5 h after lunch = 14:00.
    assert add_working_hours(at(2026, 3, 10, 11), 1.5) == at(2026, 3, 10, 14)


def test_zero_hours_is_the_start_itself():
    assert add_working_hours(at(2026, 3, 10, 22), 0) == at(2026, 3, 10, 22)


def test_urgent_hours_run_day_and_night():
    # Calendar hours: Sat 23:30 + 1 h = Sun 00:30, weekend or not.
    assert add_urgent_hours(at(2026, 3, 7, 23, 30), 1) == at(2026, 3, 8, 0, 30)


def test_working_days_over_spring_festival_2026():
    # From Fri Feb 13 (not counted): Sat Feb 14 make-up day = 1, Feb 15-23 off, Tue Feb 24 = 2,
    # Wed Feb 25 = 3. The deadline is the close (17:30) of that day.
    assert add_working_days(at(2026, 2, 13, 10), 2) == at(2026, 2, 24, 17, 30)
    assert add_working_days(at(2026, 2, 13, 10), 3) == at(2026, 2, 25, 17, 30)
    # From Thu Feb 12: Feb 13 = 1, Feb 14 = 2, Feb 24 = 3, Feb 25 = 4, Feb 26 = 5.
    assert add_working_days(at(2026, 2, 12, 15), 5) == at(2026, 2, 26, 17, 30)


def test_working_days_over_national_day_reach_the_make_up_saturday():
    # From Wed Sep 30: Oct 8 = 1, Oct 9 = 2, Sat Oct 10 (make-up) = 3.
    assert add_working_days(at(2026, 9, 30, 10), 3) == at(2026, 10, 10, 17, 30)
    # One more skips Sun Oct 11: Mon Oct 12.
    assert add_working_days(at(2026, 9, 30, 10), 4) == at(2026, 10, 12, 17, 30)


def test_working_days_start_day_never_counts():
    # Fri 09:00 and Fri 22:00 both get Monday's close for 1 working day; so does a Saturday.
    for start in (at(2026, 3, 6, 9), at(2026, 3, 6, 22), at(2026, 3, 7, 10)):
        assert add_working_days(start, 1) == at(2026, 3, 9, 17, 30)


def test_zero_working_days_is_today_or_the_next_working_day():
    assert add_working_days(at(2026, 3, 10, 9), 0) == at(2026, 3, 10, 17, 30)
    assert add_working_days(at(2026, 3, 10, 18), 0) == at(2026, 3, 11, 17, 30)
    assert add_working_days(at(2026, 10, 3, 9), 0) == at(2026, 10, 8, 17, 30)


def test_working_hours_between():
    assert working_hours_between(at(2026, 3, 6, 16), at(2026, 3, 9, 11)) == 4.0
    # Across National Day: 1 h on Sep 30 + 3.5 h + 3 h on Oct 8.
    assert working_hours_between(at(2026, 9, 30, 16, 30), at(2026, 10, 8, 16, 30)) == 7.5
    assert working_hours_between(at(2026, 3, 9, 11), at(2026, 3, 6, 16)) == -4.0
    # Night to night across one working day: the whole 7.5 h.
    assert working_hours_between(at(2026, 3, 9, 20), at(2026, 3, 10, 20)) == 7.5


def test_round_trip_add_then_measure():
    start = at(2026, 2, 12, 15, 17)
    for hours in (0.25, 3, 7.5, 19.75, 40):
        assert working_hours_between(start, add_working_hours(start, hours)) == pytest.approx(hours)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        add_working_hours(datetime(2026, 3, 6, 16), 1)
    with pytest.raises(ValueError, match="naive"):
        working_hours_between(at(2026, 3, 6, 16), datetime(2026, 3, 7))
    with pytest.raises(ValueError, match="whole number"):
        add_working_days(at(2026, 3, 6, 16), 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        add_working_hours(at(2026, 3, 6, 16), -1)


def test_a_year_no_calendar_knows_fails_loudly(tmp_path, monkeypatch):
    # 2027 is beyond chinese-calendar 1.11 and nothing was loaded: no Monday-Friday guess, a clear error.
    monkeypatch.setenv("ONEMAP_HOLIDAYS_FILE", str(tmp_path / "none.json"))
    sla.reset_calendar()
    with pytest.raises(CalendarNotCovered, match="does not cover 2027.*onemap holidays load"):
        add_working_days(at(2026, 12, 30, 10), 3)  # Thu Dec 31 is known, then 2027 is not
    with pytest.raises(CalendarNotCovered, match="2027"):
        add_working_hours(at(2027, 1, 4, 9), 1)
    with pytest.raises(CalendarNotCovered):
        deadline(at(2027, 3, 1, 9), "0101", "general", "complete")
    assert add_working_days(at(2026, 12, 29, 10), 2) == at(2026, 12, 31, 17, 30)  # 2026 still fine


def test_the_package_refusing_a_year_fails_loudly(monkeypatch, tmp_path):
    # Whatever the package's range, a NotImplementedError without a loaded schedule is an error.
    def refuse(day):
        raise NotImplementedError("no data")

    monkeypatch.setenv("ONEMAP_HOLIDAYS_FILE", str(tmp_path / "none.json"))
    monkeypatch.setattr(sla.chinese_calendar, "is_workday", refuse)
    sla.reset_calendar()
    try:
        with pytest.raises(CalendarNotCovered, match="2026"):
            add_working_hours(at(2026, 10, 1, 8, 30), 1)
    finally:
        monkeypatch.undo()
        sla.reset_calendar()
    assert not sla.is_workday(at(2026, 10, 1).date())


# An invented schedule for the tests (the real 2027 notice is not out): New Year Fri Jan 1 off,
# Spring Festival Feb 5-11 off, Sat Feb 13 worked.
SCHEDULE_2027 = {
    "year": 2027, "source": "test schedule",
    "holidays": [{"date": "2027-01-01", "name": "元旦"}] + [f"2027-02-{d:02d}" for d in range(5, 12)],
    "workdays": [{"date": "2027-02-13", "name": "春节调休上班"}],
}


def test_a_loaded_schedule_is_what_the_deadlines_use(tmp_path, monkeypatch):
    from layers.incidents import holidays

    monkeypatch.setenv("ONEMAP_HOLIDAYS_FILE", str(tmp_path / "holidays.json"))
    sla.reset_calendar()
    holidays.store(holidays.parse(json.dumps(SCHEDULE_2027)))
    try:
        # Thu Dec 31 2026 + 1 working day: Fri Jan 1 is New Year, so Mon Jan 4 closes it.
        assert add_working_days(at(2026, 12, 31, 10), 1) == at(2027, 1, 4, 17, 30)
        # Thu Feb 4 + 1: Feb 5-11 off, Sat Feb 13 worked (make-up), Fri Feb 12 first → Fri Feb 12.
        assert add_working_days(at(2027, 2, 4, 10), 1) == at(2027, 2, 12, 17, 30)
        assert add_working_days(at(2027, 2, 12, 10), 1) == at(2027, 2, 13, 17, 30)  # the make-up Saturday
        assert not sla.is_workday(at(2027, 2, 8).date()) and sla.is_workday(at(2027, 2, 13).date())
        with pytest.raises(CalendarNotCovered, match="2028"):
            add_working_days(at(2027, 12, 31, 10), 1)
    finally:
        sla.reset_calendar()


@pytest.mark.parametrize(("text", "reason"), [
    ('{"year": 2027, "holidays": ["2027-02-30"]}', "not a date"),
    ('{"year": 2027, "holidays": ["2027-01-01"], "workdays": ["2027-01-01"]}', "both"),
    ('{"year": 2027, "holidays": ["2027-01-01"], "workdays": ["2027-01-05"]}', "weekday already"),
    ('{"year": 2027, "holidays": ["2028-01-01"]}', "outside the year"),
    ('{"year": 2027, "workdays": ["2027-02-13"]}', "lists no holiday"),
    ("date,kind,name\n2027-01-01,maybe,x\n", "must be holiday"),
    ("day,name\n2027-01-01,x\n", "header date,kind,name"),
])
def test_a_bad_schedule_is_refused_with_the_reason(text, reason):
    from layers.incidents import holidays

    with pytest.raises(InvalidInput, match=reason):
        holidays.parse(text)


def test_onemap_holidays_load(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from scripts.cli import app

    store = tmp_path / "store.json"
    monkeypatch.setenv("ONEMAP_HOLIDAYS_FILE", str(store))
    sla.reset_calendar()
    good = tmp_path / "2027.csv"
    good.write_text("date,kind,name\n2027-01-01,holiday,元旦\n2027-02-13,workday,春节调休上班\n",
                    encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text("date,kind,name\n2027-01-04,班,x\n", encoding="utf-8")
    runner = CliRunner()
    try:
        result = runner.invoke(app, ["holidays", "load", str(bad)])
        assert result.exit_code == 1 and "weekday already" in result.output and not store.exists()
        result = runner.invoke(app, ["holidays", "load", str(good), "--dry-run"])
        assert result.exit_code == 0 and "2027: 1 holidays, 1 make-up" in result.output and not store.exists()
        result = runner.invoke(app, ["holidays", "load", str(good)])
        assert result.exit_code == 0, result.output
        assert json.loads(store.read_text(encoding="utf-8"))["years"][0]["year"] == 2027
        assert sla.is_workday(at(2027, 2, 13).date()) and not sla.is_workday(at(2027, 1, 1).date())
        assert "2027: loaded" in runner.invoke(app, ["holidays", "list"]).output
    finally:
        sla.reset_calendar()


def test_custom_schedule():
    # A 09:00-17:00 single-period day: Fri 16:00 + 2 h = Mon 10:00.
    schedule = WorkSchedule.parse("09:00-17:00")
    assert schedule.periods == ((time(9), time(17)),) and schedule.hours_per_day == 8.0
    assert add_working_hours(at(2026, 3, 6, 16), 2, schedule=schedule) == at(2026, 3, 9, 10)
    assert sla.DEFAULT_SCHEDULE.hours_per_day == 7.5
    with pytest.raises(ValueError):
        WorkSchedule.parse("12:00-08:30")


def test_deadlines_per_category_and_kind():
    start = at(2026, 3, 6, 16)  # Friday 16:00
    # 0402 water pipe burst: urgent_hours 24/12/4 h, on site within 1 h, sign within 2 calendar h.
    assert deadline(start, "0402", "urgent") == at(2026, 3, 6, 20)
    assert deadline(start, "0402", "general") == at(2026, 3, 7, 16)
    assert deadline(start, "0402", "general", "onsite") == at(2026, 3, 6, 17)
    assert deadline(start, "0402", "general", "sign") == at(2026, 3, 6, 18)
    assert deadline(start, "0402", "general", "dispatch") == at(2026, 3, 6, 17)
    # 0103 积存垃圾渣土: working_days 3/2/1; from Friday: Mon = 1, Tue = 2, Wed = 3.
    assert deadline(start, "0103", "general") == at(2026, 3, 11, 17, 30)
    assert deadline(start, "0103", "important") == at(2026, 3, 10, 17, 30)
    # Sign within 2 working hours: Fri 16:00-17:30 = 1.5 h, Mon 08:30 + 0.5 h = 09:00.
    assert deadline(start, "0103", "general", "sign") == at(2026, 3, 9, 9)
    # Dispatch within 1 working day: Monday's close.
    assert deadline(start, "0103", "general", "dispatch") == at(2026, 3, 9, 17, 30)
    # 0102 暴露垃圾 is simple: complete in 8 working h = Fri 1.5 h + Mon 3.5 h (morning) + 3 h
    # from 13:30 → Mon 16:30;
    # on site within 2 working h → Mon 09:00; urgent severity: on site within 2 calendar h → 18:00.
    assert deadline(start, "0102", "general") == at(2026, 3, 9, 16, 30)
    assert deadline(start, "0102", "general", "onsite") == at(2026, 3, 9, 9)
    assert deadline(start, "0102", "urgent", "onsite") == at(2026, 3, 6, 18)


def test_deadline_errors():
    with pytest.raises(InvalidInput, match="no on-site deadline"):
        deadline(at(2026, 3, 6, 16), "0103", "general", "onsite")
    with pytest.raises(InvalidInput, match="severity"):
        deadline(at(2026, 3, 6, 16), "0103", "major")
    with pytest.raises(InvalidInput, match="kind"):
        deadline(at(2026, 3, 6, 16), "0103", "general", "finish")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="close matches: 0106 绿地脏乱"):
        deadline(at(2026, 3, 6, 16), "0107", "general")


def test_clock_of():
    assert clock_of("0402", "general") == "calendar"
    assert clock_of("0103", "urgent") == "calendar"
    assert clock_of("0103", "important") == "working"


def test_card_state_on_the_working_clock():
    # Mon 08:30 + 10 working h: Mon 7.5 h, Tue 08:30 + 2.5 h = Tue 11:00.
    start = at(2026, 3, 9, 8, 30)
    due = add_working_hours(start, 10)
    assert due == at(2026, 3, 10, 11)
    # 80% = 8 working h = Mon 7.5 h + Tue 0.5 h → Tue 09:00. The night in between uses nothing.
    assert card_state(at(2026, 3, 9, 23), start, due) == "ok"
    assert card_state(at(2026, 3, 10, 8, 59), start, due) == "ok"
    assert card_state(at(2026, 3, 10, 9), start, due) == "yellow"
    assert card_state(at(2026, 3, 10, 11), start, due) == "yellow"  # due, not yet breached
    assert card_state(at(2026, 3, 10, 11, 0, 1), start, due) == "red"


def test_card_state_on_the_calendar_clock():
    # 1 calendar hour from 10:00: 80% is 10:48.
    start, due = at(2026, 3, 7, 10), at(2026, 3, 7, 11)
    assert card_state(at(2026, 3, 7, 10, 47), start, due, clock="calendar") == "ok"
    assert card_state(at(2026, 3, 7, 10, 48), start, due, clock="calendar") == "yellow"
    assert card_state(at(2026, 3, 7, 11, 1), start, due, clock="calendar") == "red"
    # On a Saturday no working time lies between: the working clock falls back to calendar time.
    assert card_state(at(2026, 3, 7, 10, 48), start, due) == "yellow"
    assert card_state(at(2026, 3, 7, 10, 12), start, due) == "ok"
