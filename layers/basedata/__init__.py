"""Base data of people, places, things and organisations (人、地、事、物、组织): buildings and houses,
households, residents, businesses and organisations, key sites — attached to the grid and the standard
address, captured and updated by grid workers, personal numbers masked unless a permitted role asks and
is audited. Nothing is re-exported here.
"""
