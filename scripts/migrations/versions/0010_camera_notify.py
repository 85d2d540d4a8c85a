"""Tell live listeners about camera alarms (NOTIFY onemap_alarms) and camera status changes
(NOTIFY onemap_cameras), whichever process writes them.

Row triggers, because alarms change rarely (a start, an update a minute, an end) and each change is
worth one event: an INSERT is ``start``, an UPDATE that ends an active alarm is ``end``, any other
UPDATE is ``update``. The payload places the alarm (grid, village, town, district codes derived from
the grid its map point fell in, else the camera's; lon/lat) so the live stream can scope it, and
carries ``title``/``text`` in Chinese for the big screen's feed. A camera's event fires only when its
status really changes (online ↔ offline ↔ error), not on every frame. Delivered at commit.

Revision ID: 0010_camera_notify
Revises: 0006
"""

from alembic import op

revision = "0010_camera_notify"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE FUNCTION onemap_notify_alarms() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      cam record;
      ev text;
      title text;
    BEGIN
      IF TG_OP = 'INSERT' THEN
        ev := 'start';
      ELSIF OLD.state = 'active' AND NEW.state = 'ended' THEN
        ev := 'end';
      ELSE
        ev := 'update';
      END IF;
      SELECT c.name, c.grid_code, c.village_code, c.town_code, c.district_code INTO cam
      FROM cameras c WHERE c.id = NEW.camera_id;
      title := CASE NEW.kind WHEN 'crowd' THEN '人群聚集' WHEN 'parking' THEN '违章停车' ELSE '目标出现' END
               || CASE ev WHEN 'end' THEN '解除' ELSE '' END;
      PERFORM pg_notify('onemap_alarms', json_build_object(
        'kind', 'camera_alarm', 'event', ev, 'alarm_id', NEW.id, 'camera_id', NEW.camera_id,
        'camera_name', cam.name, 'rule', NEW.kind, 'rule_id', NEW.rule_id, 'state', NEW.state,
        'count', NEW.count, 'max_count', NEW.max_count, 'dwell_s', NEW.dwell_s, 'ticket_id', NEW.ticket_id,
        'title', title,
        'text', coalesce(cam.name, NEW.camera_id)
                || CASE ev WHEN 'end' THEN ' · 已解除' ELSE ' · ' || NEW.count || ' 个目标' END,
        'grid_code', coalesce(NEW.grid_code, cam.grid_code),
        'village_code', CASE WHEN NEW.grid_code IS NULL THEN cam.village_code ELSE left(NEW.grid_code, 12) END,
        'town_code', CASE WHEN NEW.grid_code IS NULL THEN cam.town_code ELSE left(NEW.grid_code, 9) || '000' END,
        'district_code', CASE WHEN NEW.grid_code IS NULL THEN cam.district_code
                              ELSE left(NEW.grid_code, 6) || '000000' END,
        'lon', ST_X(NEW.geom), 'lat', ST_Y(NEW.geom),
        'at', CASE ev WHEN 'end' THEN coalesce(NEW.ended_at, NEW.last_seen_at) ELSE NEW.last_seen_at END)::text);
      RETURN NULL;
    END $$;
    """)
    op.execute("""
    CREATE TRIGGER alarms_notify AFTER INSERT OR UPDATE ON alarms
    FOR EACH ROW EXECUTE FUNCTION onemap_notify_alarms();
    """)
    op.execute("""
    CREATE FUNCTION onemap_notify_camera_status() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('onemap_cameras', json_build_object(
        'kind', 'camera_status', 'id', NEW.id, 'name', NEW.name, 'status', NEW.status,
        'status_note', left(NEW.status_note, 500), 'last_frame_at', NEW.last_frame_at,
        'grid_code', NEW.grid_code, 'village_code', NEW.village_code, 'town_code', NEW.town_code,
        'district_code', NEW.district_code, 'lon', ST_X(NEW.geom), 'lat', ST_Y(NEW.geom),
        'at', now())::text);
      RETURN NULL;
    END $$;
    """)
    op.execute("""
    CREATE TRIGGER cameras_status_notify AFTER UPDATE OF status ON cameras
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION onemap_notify_camera_status();
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS cameras_status_notify ON cameras")
    op.execute("DROP FUNCTION IF EXISTS onemap_notify_camera_status()")
    op.execute("DROP TRIGGER IF EXISTS alarms_notify ON alarms")
    op.execute("DROP FUNCTION IF EXISTS onemap_notify_alarms()")
