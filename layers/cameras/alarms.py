"""Alarms → tickets (视频告警转工单): one alarm opens ONE ticket; while it lasts it updates that ticket.

The ticket goes through the tickets service like any other report (channel ``camera``, the rule's
category and severity), placed at the detections' map point when the camera is calibrated, otherwise
at the camera: so the grid, town and deadlines come out exactly as for a citizen's report. The
annotated key frame is attached to the ticket (the handler sees what the camera saw) and its path kept
in ``key_frames``. Updates and the end of the alarm are timeline events on the ticket, never new
tickets. Every change is announced on ``onemap_alarms`` for the live map by the database itself
(trigger ``alarms_notify``, migration 0010_camera_notify), so alarms written by any process reach every screen.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import Point
from sqlalchemy import select
from sqlalchemy.orm import Session

from gis.locate import locate
from layers.cameras.calibration import Calibration
from layers.cameras.models import Alarm, Camera, KeyFrame
from layers.cameras.rules import AlarmEvent, RuleKind, feet
from layers.incidents.attachments import MAX_ATTACHMENT_BYTES, add_attachment
from layers.incidents.intake import create_ticket
from layers.incidents.models import TicketEvent
from layers.incidents.store import get_ticket

NOTIFY_CHANNEL = "onemap_alarms"  # filled by the alarms_notify trigger
TITLES = {RuleKind.CROWD: "人群聚集", RuleKind.PARKING: "违章停车", RuleKind.PRESENT: "目标出现"}


def place(camera: Camera, event: AlarmEvent, calibration: Calibration | None) -> tuple[float, float] | None:
    """Where the alarm is: the mean map point of the objects' feet when calibrated, else the camera."""
    if calibration is not None and event.objects:
        lon, lat = calibration.project(*feet(list(event.objects)).T)
        if np.any(np.isfinite(lon)):
            return float(np.nanmean(lon)), float(np.nanmean(lat))
    if camera.geom is None:
        return None
    pt = to_shape(camera.geom)
    return float(pt.x), float(pt.y)


def describe(camera: Camera, event: AlarmEvent) -> str:
    rule = event.rule
    what = TITLES[rule.kind]
    classes = "、".join(rule.classes)
    if rule.kind == RuleKind.CROWD:
        detail = f"{event.count} 人（阈值 {rule.min_count}），持续 {event.dwell_s:.0f} 秒"
    elif rule.kind == RuleKind.PARKING:
        detail = f"{event.count} 辆 {classes} 在禁停区停留 {event.dwell_s:.0f} 秒（阈值 {rule.min_dwell_s:.0f} 秒）"
    else:
        detail = f"{classes} × {event.count}"
    return f"摄像头 {camera.name}（{camera.id}）{what}：{detail}"


def active_alarm(session: Session, camera_id: str, event: AlarmEvent) -> Alarm | None:
    stmt = select(Alarm).where(Alarm.camera_id == camera_id, Alarm.state == "active",
                               Alarm.kind == event.rule.kind.value)
    if event.rule.id is not None:
        stmt = stmt.where(Alarm.rule_id == event.rule.id)
    return session.scalars(stmt.order_by(Alarm.id.desc()).limit(1)).first()


def _attach(session: Session, ticket_id: int, key_frame: str | None, at: datetime, actor: str) -> None:
    if not key_frame or not Path(key_frame).is_file():
        return
    data = Path(key_frame).read_bytes()
    if len(data) <= MAX_ATTACHMENT_BYTES:
        add_attachment(session, ticket_id, filename=Path(key_frame).name, content_type="image/jpeg",
                               data=data, uploaded_by=actor, at=at)


def _open(session: Session, camera: Camera, event: AlarmEvent, at: datetime,
          calibration: Calibration | None, key_frame: str | None) -> Alarm:
    where = place(camera, event, calibration)
    actor = f"camera:{camera.id}"
    ticket = create_ticket(
        session, channel="camera", category=event.rule.category, severity=event.rule.severity,
        description=describe(camera, event), lon=None if where is None else where[0],
        lat=None if where is None else where[1], source_ref=actor, actor=actor, at=at)
    grid = locate(session, *where).grid_code if where is not None else None
    alarm = Alarm(camera_id=camera.id, rule_id=event.rule.id, kind=event.rule.kind.value, state="active",
                  started_at=at, last_seen_at=at, count=event.count, max_count=event.count,
                  dwell_s=event.dwell_s, updates=0, grid_code=grid, key_frame=key_frame,
                  geom=None if where is None else from_shape(Point(*where), srid=4326),
                  ticket_id=ticket.duplicate_of or ticket.id)  # a re-raised alarm joins the open ticket
    session.add(alarm)
    session.flush()
    _attach(session, ticket.duplicate_of or ticket.id, key_frame, at, actor)
    return alarm


def _ticket_note(session: Session, alarm: Alarm, event: AlarmEvent, at: datetime, key_frame: str | None) -> None:
    """The ticket's timeline learns how the alarm goes on (state unchanged: an ``alarm`` event)."""
    if alarm.ticket_id is None:
        return
    ticket = get_ticket(session, alarm.ticket_id)
    note = (f"告警持续：{event.count} 个目标，已持续 {event.dwell_s:.0f} 秒" if event.kind == "update"
            else "告警解除：目标已离开或人群已散去")
    session.add(TicketEvent(ticket_id=ticket.id, at=at, actor=f"camera:{alarm.camera_id}", role="system",
                            move="alarm", from_state=ticket.state, to_state=ticket.state, note=note,
                            rework=False, payload={"alarm_id": alarm.id, "event": event.kind,
                                                   "count": event.count, "dwell_s": event.dwell_s,
                                                   "key_frame": key_frame}))
    ticket.updated_at = at


def handle(session: Session, camera: Camera, event: AlarmEvent, *, at: datetime,
           calibration: Calibration | None = None, key_frame: str | None = None) -> Alarm | None:
    """Apply one rule event: ``start`` opens alarm + ticket, ``update``/``end`` change them."""
    if event.kind == "start":
        alarm = _open(session, camera, event, at, calibration, key_frame)
    else:
        found = active_alarm(session, camera.id, event)
        if found is None:
            return None
        alarm = found
        alarm.last_seen_at = at
        if event.kind == "end":
            alarm.state, alarm.ended_at = "ended", at
        else:
            alarm.count, alarm.max_count = event.count, max(alarm.max_count, event.count)
            alarm.dwell_s, alarm.updates = event.dwell_s, alarm.updates + 1
            alarm.key_frame = key_frame or alarm.key_frame
        _ticket_note(session, alarm, event, at, key_frame)
    if key_frame:
        session.add(KeyFrame(camera_id=camera.id, alarm_id=alarm.id, at=at, path=key_frame,
                             detections=len(event.objects)))
    session.flush()
    return alarm


def close_stale(session: Session, camera_ids: list[str], *, at: datetime,
                note: str = "分析服务重启，告警已结束") -> int:
    """End the active alarms of these cameras when no rule engine watches them any more (the runner
    stops, or starts after one that was killed): nothing else would ever end them. Each ticket's
    timeline says so; its ticket stays open for the desk. Returns how many were ended."""
    stale = session.scalars(select(Alarm).where(Alarm.camera_id.in_(camera_ids), Alarm.state == "active")).all()
    for alarm in stale:
        alarm.state, alarm.ended_at, alarm.last_seen_at = "ended", at, max(at, alarm.last_seen_at)
        if alarm.ticket_id is not None:
            ticket = get_ticket(session, alarm.ticket_id)
            session.add(TicketEvent(ticket_id=ticket.id, at=at, actor=f"camera:{alarm.camera_id}", role="system",
                                    move="alarm", from_state=ticket.state, to_state=ticket.state, note=note,
                                    rework=False, payload={"alarm_id": alarm.id, "event": "end"}))
    session.flush()
    return len(stale)
