"""Tickets (事件工单): categories and routing, the workflow table, SLA clocks, and (later) tables.

The pure parts — ``categories``, ``workflow``, ``sla`` — need no database and are imported directly;
nothing is re-exported here so importing the package never pulls in the models.
"""
