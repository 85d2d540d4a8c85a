"""Tickets (事件工单): from a citizen's report to its closure, and the cards and rankings on the way.

Where things live (import from the module itself: nothing is re-exported here, so importing the
package never pulls in the models):

- ``workflow``   the state table: every move's row (who, from where, to where, its effects). Pure.
- ``categories`` categories, departments and default routing, from CSV. Pure.
- ``sla``, ``holidays``  deadlines in working hours and days on the holiday calendar. Pure.
- ``models``     the tables.
- ``places``     a report's point or address resolved to a grid (or why it could not be).
- ``routes``     the planners' routing overrides over the CSV defaults.
- ``store``      reading one ticket and writing a ticket with its event in one statement.
- ``intake``     receiving a report: validate, place, route, dedupe; placing an unplaced one.
- ``moves``      planning a move from its row and writing it; split children.
- ``cards``      the running clock, yellow and red cards, the scheduled card job.
- ``attachments`` photos on a ticket.
- ``read``       list rows, the desk's detail and timeline, filtered lists, the Open311 query.
- ``authz``      whether this account may make this move on this ticket.
- ``kpis``, ``layer``, ``simulate``  monthly KPIs and rankings, what the map draws, a demo week.

Nothing here commits: the API, the CLI and the simulation call the same functions and own the
transaction, so a refused request leaves nothing half-written.
"""
