"""Ticket event notifications carry the ticket's department, assignee and co-handling units.

The live stream (api/routers/live.py) shows a department (职能部门) only the events of tickets routed
to it: ``department``, ``assignee`` or ``co_units``, the columns ``Scope`` reads for a department. The
0008 payload had none of them, so a department's screen got only bare nudges for every ticket. All
three are added (``department`` alone would hide a ticket dispatched or joined to a department other
than the one its category routes to). The trigger and everything else in the payload are unchanged.

On the incidents branch, after 0008 (another branch may carry its own 0009: revision ids differ).

Revision ID: 0009_ticket_event_department
Revises: 0008
"""

from alembic import op

revision = "0009_ticket_event_department"
down_revision = "0008"
branch_labels = None
depends_on = None

_FUNCTION = """
CREATE OR REPLACE FUNCTION onemap_notify_ticket_events() RETURNS trigger LANGUAGE plpgsql AS $$
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
           t.town_code, ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat{extra_columns}
    FROM new_events e JOIN tickets t ON t.id = e.ticket_id
  LOOP
    PERFORM pg_notify('onemap_tickets', json_build_object(
      'id', r.ticket_id, 'move', r.move, 'state', r.state, 'card', r.card, 'category', r.category,
      'grid_code', r.grid_code, 'town_code', r.town_code, 'lon', r.lon, 'lat', r.lat, 'at', r.at{extra_keys})::text);
  END LOOP;
  RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.execute(_FUNCTION.format(
        extra_columns=",\n           t.department, t.assignee, t.co_units",
        extra_keys=",\n      'department', r.department, 'assignee', r.assignee, 'co_units', r.co_units",
    ))


def downgrade() -> None:
    op.execute(_FUNCTION.format(extra_columns="", extra_keys=""))  # the 0008 payload
