"""One package per kind of thing on the map (incidents, cameras + vision, sensors, workers).

Each owns its tables, its rules and its map-layer builder; it imports gis/, never api/ or web/.
"""
