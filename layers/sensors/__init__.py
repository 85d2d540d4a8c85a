"""Pollution sensors (环境监测): registry, bulk readings, thresholds (GB 3095-2012) that raise alarms
and tickets, and the map layer. Nothing is re-exported: import the module you need.
"""
