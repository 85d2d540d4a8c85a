import time
from pathlib import Path
import cProfile, pstats
from gis.geocode import import_addresses, geocode, gazetteer, reverse
from gis.locate import locate
CSV = Path("data/grid_boundaries/addresses.csv")

def test_scratch(demo_session):
    t = time.perf_counter(); locate(demo_session, 118.79, 36.86); print("locate warm", time.perf_counter() - t)
    pr = cProfile.Profile(); pr.enable()
    t = time.perf_counter()
    n = import_addresses(demo_session, CSV, replace=True)
    print("import", n, time.perf_counter() - t)
    pr.disable(); pstats.Stats(pr).sort_stats("cumulative").print_stats(15)
