"""Camera rules (视频告警规则): detections over time → alarm start, update and end. Pure, no YOLO.

A rule watches one camera: a region of interest drawn in image pixels (ROI), the class names it cares
about, a minimum count, a minimum dwell, a cool-down between alarms, and when an alarm clears. Kinds:

- ``crowd`` (人群聚集): at least N people in the region, held for the dwell time;
- ``parking`` (违章停车): a vehicle staying longer than the dwell time in a no-parking region;
- ``present`` (目标出现): any class the model has (fire, smoke, garbage, stalls...) staying in the
  region for the dwell time.

An object is "in" the region when its foot point (bottom centre of the box, where it touches the
ground) is: that is also the point the calibration puts on the map.

Stationary suppression, because parked cars raising endless events is what Frigate's users complain
about most: a track already in view when the rule starts (within ``warmup_s``) is held back, and after
``stationary_s`` without its box centre moving more than ``stationary_px`` it is marked parked. Either
way it is ignored until it moves; once it moves it counts like any other object.

Times are float seconds (the runner passes POSIX timestamps) so the engine is trivially testable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
import shapely

from gis.errors import InvalidInput

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


class RuleKind(StrEnum):
    CROWD = "crowd"
    PARKING = "parking"
    PRESENT = "present"


# Ticket categories (layers/incidents/data/categories.csv, 12 视频告警) and per-kind defaults.
DEFAULTS: dict[RuleKind, dict] = {
    RuleKind.CROWD: {"classes": ("person",), "min_count": 5, "min_dwell_s": 10.0, "category": "1201"},
    RuleKind.PARKING: {"classes": ("car",), "min_count": 1, "min_dwell_s": 60.0, "category": "1202"},
    RuleKind.PRESENT: {"classes": (), "min_count": 1, "min_dwell_s": 0.0, "category": "1203"},
}
SEVERITIES = ("general", "important", "urgent")


@dataclass(frozen=True)
class Rule:
    """One camera rule; build it with :func:`make_rule`, which fills the kind's defaults and checks."""

    kind: RuleKind
    classes: tuple[str, ...]
    roi: tuple[tuple[float, float], ...] | None = None  # None: the whole frame
    min_count: int = 1
    min_dwell_s: float = 0.0
    cooldown_s: float = 300.0
    clear_s: float = 5.0  # the condition false this long ends the alarm
    stationary_s: float = 10.0
    stationary_px: float = 8.0
    update_s: float = 60.0  # an ongoing alarm reports at least this often (and on every count change)
    category: str = "1203"
    severity: str = "general"
    name: str = ""
    id: int | None = None

    def missing_classes(self, names: Iterable[str]) -> list[str]:
        """Class names this rule needs that the model does not have."""
        have = set(names)
        return [c for c in self.classes if c not in have]

    def check_classes(self, names: Iterable[str]) -> None:
        """Refuse a rule naming a class the model cannot detect (it would silently never fire)."""
        names = list(names)
        missing = self.missing_classes(names)
        if missing:
            raise InvalidInput(f"rule {self.name or self.kind!s} names class(es) {', '.join(missing)} the model "
                               f"does not have; it knows: {', '.join(names)}")


def _roi(points) -> tuple[tuple[float, float], ...] | None:
    if points is None:
        return None
    try:
        pts = tuple((float(x), float(y)) for x, y in points)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("roi must be a list of [x, y] pixel pairs") from exc
    if len(pts) < 3:
        raise InvalidInput(f"roi needs at least 3 points, got {len(pts)}")
    poly = shapely.Polygon(pts)
    if not poly.is_valid or poly.area <= 0:
        raise InvalidInput("roi is not a valid polygon (self-crossing or zero area)")
    return pts


def make_rule(kind: str, **values) -> Rule:
    """A checked :class:`Rule` of ``kind`` with that kind's defaults for anything not given."""
    try:
        k = RuleKind(kind)
    except ValueError as exc:
        raise InvalidInput(f"unknown rule kind {kind!r}; use one of: {', '.join(RuleKind)}") from exc
    merged = {**DEFAULTS[k], **{key: v for key, v in values.items() if v is not None}}
    merged["classes"] = tuple(str(c).strip() for c in merged.get("classes") or ())
    if not merged["classes"]:
        raise InvalidInput(f"a {k} rule needs at least one class name")
    merged["roi"] = _roi(merged.get("roi"))
    rule = Rule(kind=k, **merged)
    if rule.min_count < 1:
        raise InvalidInput("min_count must be at least 1")
    for name in ("min_dwell_s", "cooldown_s", "clear_s", "stationary_s", "stationary_px", "update_s"):
        if getattr(rule, name) < 0:
            raise InvalidInput(f"{name} must not be negative")
    if rule.severity not in SEVERITIES:
        raise InvalidInput(f"severity must be one of {', '.join(SEVERITIES)}")
    if not (len(rule.category) == 4 and rule.category.isdigit()):
        raise InvalidInput(f"category must be a 4-digit code, got {rule.category!r}")
    return rule


@dataclass(frozen=True)
class Seen:
    """One detection in one frame (track id None when the runner does not track)."""

    cls: str
    conf: float
    box: Box
    track_id: int | None = None

    @property
    def foot(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2.0, self.box[3])


def feet(seen: Sequence[Seen]) -> np.ndarray:
    """(n, 2) foot points: bottom centre of each box."""
    if not seen:
        return np.zeros((0, 2))
    boxes = np.array([s.box for s in seen], dtype=float)
    return np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2.0, boxes[:, 3]])


def in_roi(rule: Rule, seen: Sequence[Seen]) -> np.ndarray:
    """Boolean mask: foot point inside (or on the edge of) the rule's region, all at once."""
    pts = feet(seen)
    if rule.roi is None:
        return np.ones(len(pts), dtype=bool)
    poly = shapely.Polygon(rule.roi)
    shapely.prepare(poly)
    return shapely.intersects_xy(poly, pts[:, 0], pts[:, 1]) if len(pts) else np.zeros(0, dtype=bool)


@dataclass(frozen=True)
class AlarmEvent:
    """``start`` opens an alarm (and its ticket), ``update`` refreshes it, ``end`` clears it."""

    kind: str
    rule: Rule
    t: float
    count: int
    objects: tuple[Seen, ...]
    dwell_s: float
    suppressed: tuple[int, ...] = ()


@dataclass
class _Track:
    first_t: float
    last_t: float
    anchor: tuple[float, float]
    anchor_t: float
    preexisting: bool
    roi_since: float | None = None


@dataclass
class RuleEngine:
    """Feeds one rule frame by frame; :meth:`step` returns at most one event per frame."""

    rule: Rule
    warmup_s: float = 1.0  # tracks first seen this soon after the rule started were already there
    lost_s: float = 10.0  # forget a track unseen this long
    start_t: float | None = None
    tracks: dict[int, _Track] = field(default_factory=dict)
    active: bool = False
    cond_since: float | None = None
    last_true: float | None = None
    ended_at: float | None = None
    last_report: tuple[float, int] | None = None

    def _observe(self, t: float, seen: Sequence[Seen], inside: np.ndarray) -> None:
        assert self.start_t is not None
        for s, ok in zip(seen, inside, strict=True):
            if s.track_id is None:
                continue
            cx, cy = (s.box[0] + s.box[2]) / 2.0, (s.box[1] + s.box[3]) / 2.0
            tr = self.tracks.get(s.track_id)
            if tr is None:
                tr = self.tracks[s.track_id] = _Track(t, t, (cx, cy), t, t - self.start_t <= self.warmup_s)
            if np.hypot(cx - tr.anchor[0], cy - tr.anchor[1]) > self.rule.stationary_px:
                if tr.preexisting:  # it moved: it counts from now on, its dwell starts now
                    tr.preexisting, tr.roi_since = False, None
                tr.anchor, tr.anchor_t = (cx, cy), t
            if t - tr.last_t > self.rule.clear_s:
                tr.roi_since = None  # gone for a while: its dwell starts again
            tr.last_t = t
            tr.roi_since = (tr.roi_since if tr.roi_since is not None else t) if ok else None
        for tid in [k for k, tr in self.tracks.items() if t - tr.last_t > self.lost_s]:
            del self.tracks[tid]

    def parked(self, t: float) -> list[int]:
        """Track ids held back as already there at rule start and still not moved (stationary)."""
        return sorted(k for k, tr in self.tracks.items()
                      if tr.preexisting and t - tr.anchor_t >= self.rule.stationary_s)

    def _qualifying(self, t: float, seen: Sequence[Seen], inside: np.ndarray) -> tuple[list[Seen], float]:
        per_object = self.rule.kind != RuleKind.CROWD
        out, dwell = [], 0.0
        for s, ok in zip(seen, inside, strict=True):
            if not ok:
                continue
            tr = self.tracks.get(s.track_id) if s.track_id is not None else None
            if tr is not None and tr.preexisting:
                continue  # suppressed: already there and not moved
            d = t - tr.roi_since if tr is not None and tr.roi_since is not None else 0.0
            if per_object and d < self.rule.min_dwell_s:
                continue
            out.append(s)
            dwell = max(dwell, d)
        return out, dwell

    def step(self, t: float, seen: Sequence[Seen]) -> AlarmEvent | None:
        """Advance to time ``t`` with this frame's detections (any classes; the rule filters)."""
        if self.start_t is None:
            self.start_t = t
        mine = [s for s in seen if s.cls in self.rule.classes]
        inside = in_roi(self.rule, mine)
        self._observe(t, mine, inside)
        objects, dwell = self._qualifying(t, mine, inside)
        holds = len(objects) >= self.rule.min_count
        if holds:
            self.cond_since = t if self.cond_since is None else self.cond_since
            self.last_true = t
            if self.rule.kind == RuleKind.CROWD:
                dwell = t - self.cond_since
                holds = dwell >= self.rule.min_dwell_s
        else:
            self.cond_since = None
        return self._transition(t, holds, objects, dwell)

    def _event(self, kind: str, t: float, objects: list[Seen], dwell: float) -> AlarmEvent:
        self.last_report = (t, len(objects))
        return AlarmEvent(kind, self.rule, t, len(objects), tuple(objects), round(dwell, 3),
                          tuple(self.parked(t)))

    def _transition(self, t: float, holds: bool, objects: list[Seen], dwell: float) -> AlarmEvent | None:
        if not self.active:
            cooled = self.ended_at is None or t - self.ended_at >= self.rule.cooldown_s
            if holds and cooled:
                self.active = True
                return self._event("start", t, objects, dwell)
            return None
        if holds:
            assert self.last_report is not None
            last_t, last_n = self.last_report
            if len(objects) != last_n or t - last_t >= self.rule.update_s:
                return self._event("update", t, objects, dwell)
            return None
        if self.last_true is not None and t - self.last_true >= self.rule.clear_s:
            self.active, self.ended_at = False, t
            return self._event("end", t, [], 0.0)
        return None


def with_id(rule: Rule, rule_id: int) -> Rule:
    """The same rule carrying its database id (rules are frozen)."""
    return replace(rule, id=rule_id)
