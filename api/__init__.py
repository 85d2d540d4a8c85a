"""OneMap's HTTP API (FastAPI): thin routes over gis/ and layers/ services."""
