"""Tell live listeners about ticket events (NOTIFY onemap_tickets), whichever process writes them.

A statement-level trigger with a transition table: up to 50 new events in one statement are sent one
notification each (ticket id, state, card, move, category, grid, point); a bulk load sends one
summary instead of flooding the channel. Notifications are delivered at commit, so a rolled-back
write never shows on the big screen.

Revision ID: 0008
Revises: 0002
"""

from alembic import op

revision = "0008"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE FUNCTION onemap_notify_ticket_events() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      n integer;
      r record;
    BEGIN
      SELECT count(*) INTO n FROM new_events;
      IF n > 50 THEN
        PERFORM pg_notify('onemap_tickets', json_build_object('bulk', n)::text);
        RETURN NULL;
      END IF;
      FOR r IN
        SELECT e.ticket_id, e.move, e.to_state, e.at, t.state, t.card, t.category, t.grid_code,
               t.town_code, ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat
        FROM new_events e JOIN tickets t ON t.id = e.ticket_id
      LOOP
        PERFORM pg_notify('onemap_tickets', json_build_object(
          'id', r.ticket_id, 'move', r.move, 'state', r.state, 'card', r.card, 'category', r.category,
          'grid_code', r.grid_code, 'town_code', r.town_code, 'lon', r.lon, 'lat', r.lat, 'at', r.at)::text);
      END LOOP;
      RETURN NULL;
    END $$;
    """)
    op.execute("""
    CREATE TRIGGER ticket_events_notify AFTER INSERT ON ticket_events
    REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION onemap_notify_ticket_events();
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS ticket_events_notify ON ticket_events")
    op.execute("DROP FUNCTION IF EXISTS onemap_notify_ticket_events()")
