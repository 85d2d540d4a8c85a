"""Camera rules without YOLO: crowd, illegal parking, object present; dwell, cool-down, suppression."""

import pytest

from gis.errors import InvalidInput
from layers.cameras.rules import RuleEngine, Seen, in_roi, make_rule

ROI = [(100, 100), (300, 100), (300, 300), (100, 300)]


def person(i: int, x: float, foot: float = 200.0) -> Seen:
    return Seen("person", 0.9, (x - 5, foot - 30, x + 5, foot), i)


def car(i: int, x: float, foot: float = 250.0) -> Seen:
    return Seen("car", 0.9, (x - 30, foot - 25, x + 30, foot), i)


def running(rule) -> RuleEngine:
    """An engine whose rule started long ago: nothing in these frames was 'already there'."""
    return RuleEngine(rule, start_t=-100.0)


def run(engine: RuleEngine, frames):
    return [(t, ev.kind, ev.count) for t, seen in frames if (ev := engine.step(t, seen)) is not None]


def test_crowd_starts_after_dwell_updates_on_count_and_ends_after_clear():
    rule = make_rule("crowd", roi=ROI, min_count=5, min_dwell_s=10, clear_s=3, cooldown_s=100)
    engine = running(rule)
    crowd = [person(i, 120 + 30 * i) for i in range(5)]
    frames = [(float(t), crowd) for t in range(12)]
    frames += [(12.0, crowd + [person(9, 280)])]  # a sixth joins
    frames += [(float(t), crowd[:2]) for t in range(13, 18)]  # they leave
    assert run(engine, frames) == [(10.0, "start", 5), (12.0, "update", 6), (15.0, "end", 0)]


def test_crowd_cooldown_blocks_a_new_alarm_then_allows_it():
    rule = make_rule("crowd", roi=ROI, min_count=3, min_dwell_s=0, clear_s=1, cooldown_s=10)
    engine = running(rule)
    three = [person(i, 150 + 40 * i) for i in range(3)]
    frames = [(0.0, three), (1.0, []), (2.0, []), (5.0, three), (6.0, []), (7.0, []), (13.0, three)]
    assert [k for _, k, _ in run(engine, frames)] == ["start", "end", "start"]


def test_people_outside_the_region_or_other_classes_do_not_count():
    rule = make_rule("crowd", roi=ROI, min_count=3, min_dwell_s=0)
    engine = RuleEngine(rule)
    seen = [person(1, 50), person(2, 350), person(3, 200, foot=350), car(4, 200), person(5, 200)]
    assert engine.step(0.0, seen) is None


def test_foot_point_not_box_centre_decides_the_region():
    rule = make_rule("present", classes=["person"], roi=ROI)
    tall = Seen("person", 0.9, (190, 150, 210, 320), 1)  # centre inside, feet below the region
    short = Seen("person", 0.9, (190, 250, 210, 290), 2)
    assert in_roi(rule, [tall, short]).tolist() == [False, True]


def test_parking_ignores_the_car_already_parked_and_alarms_the_newcomer():
    rule = make_rule("parking", roi=ROI, min_dwell_s=60, stationary_s=10, cooldown_s=0)
    engine = RuleEngine(rule)
    parked = car(1, 150)
    frames = []
    for t in range(0, 200, 5):
        seen = [car(1, 150 + (t % 2))]  # jitter of a pixel: still parked
        if t >= 20:
            seen.append(car(2, 260) if t >= 30 else car(2, 200 + 2 * t))  # drives in, stops at t=30
        frames.append((float(t), seen))
    events = []
    for t, seen in frames:
        ev = engine.step(t, seen)
        if ev is not None:
            events.append((t, ev.kind, [s.track_id for s in ev.objects], ev.suppressed))
    assert parked.track_id == 1
    # car 2 entered the region at t=20 (foot at x=240); alarm once its dwell reaches 60 s
    assert events[0] == (80.0, "start", [2], (1,))
    assert all(kind != "start" for _, kind, _, _ in events[1:])


def test_parked_car_that_leaves_and_comes_back_counts_again():
    rule = make_rule("parking", roi=ROI, min_dwell_s=20, stationary_s=5, cooldown_s=0)
    engine = RuleEngine(rule)
    frames = [(float(t), [car(1, 150)]) for t in range(0, 30, 5)]
    frames += [(30.0, [car(1, 200)])]  # it moves 50 px: no longer "already there"
    frames += [(float(t), [car(1, 200)]) for t in range(35, 60, 5)]
    assert run(engine, frames) == [(50.0, "start", 1)]


def test_present_needs_dwell_so_one_frame_flicker_does_not_alarm():
    rule = make_rule("present", classes=["fire"], min_dwell_s=2, clear_s=2)
    engine = running(rule)
    fire = Seen("fire", 0.7, (10, 10, 40, 40), 7)
    frames = [(0.0, [fire]), (1.0, []), (2.0, []), (10.0, [fire]), (11.0, [fire]), (12.0, [fire])]
    assert run(engine, frames) == [(12.0, "start", 1)]
    assert make_rule("present", classes=["fire"]).category == "1203"


def test_untracked_detections_count_for_crowds():
    rule = make_rule("crowd", min_count=2, min_dwell_s=0)
    engine = running(rule)
    ev = engine.step(0.0, [Seen("person", 0.8, (0, 0, 10, 30)), Seen("person", 0.8, (50, 0, 60, 30))])
    assert ev is not None and ev.kind == "start" and ev.count == 2


def test_updates_are_throttled_while_the_count_is_steady():
    rule = make_rule("crowd", min_count=1, min_dwell_s=0, update_s=30)
    engine = running(rule)
    frames = [(float(t), [person(1, 200)]) for t in range(0, 70)]
    assert [(t, k) for t, k, _ in run(engine, frames)] == [(0.0, "start"), (30.0, "update"), (60.0, "update")]


def test_defaults_and_categories_per_kind():
    crowd, parking = make_rule("crowd"), make_rule("parking")
    assert (crowd.classes, crowd.min_count, crowd.category) == (("person",), 5, "1201")
    assert (parking.classes, parking.min_dwell_s, parking.category) == (("car",), 60.0, "1202")


@pytest.mark.parametrize("kind, values, message", [
    ("queue", {}, "unknown rule kind"),
    ("present", {}, "at least one class"),
    ("crowd", {"roi": [(0, 0), (1, 1)]}, "at least 3 points"),
    ("crowd", {"roi": [(0, 0), (10, 10), (10, 0), (0, 10)]}, "not a valid polygon"),
    ("crowd", {"min_count": 0}, "min_count"),
    ("crowd", {"cooldown_s": -1}, "cooldown_s"),
    ("crowd", {"severity": "huge"}, "severity"),
    ("crowd", {"category": "12"}, "4-digit"),
])
def test_bad_rules_are_refused(kind, values, message):
    with pytest.raises(InvalidInput, match=message):
        make_rule(kind, **values)


def test_a_rule_naming_a_class_the_model_lacks_is_refused():
    rule = make_rule("present", classes=["fire", "person"], name="烟火")
    assert rule.missing_classes(["person", "car"]) == ["fire"]
    with pytest.raises(InvalidInput, match="烟火 names class.*fire.*person, car"):
        rule.check_classes(["person", "car"])
