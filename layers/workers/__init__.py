"""Field workers (网格员): people and roles, grid assignments, bulk GPS ingest, daily tracks, patrol
coverage, the live index behind "nearest help", the daily patrol report and the demo-day simulator.
"""
