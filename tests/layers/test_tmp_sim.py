import time
from datetime import date, datetime, UTC
from layers.workers import simulate, report, tracks
from layers.sensors import simulate as ss, layer
def test_sim(demo_session):
    t=time.time()
    r = simulate.simulate_day(demo_session, date(2026, 5, 1))
    print(r, time.time()-t)
    t=time.time()
    f = report.patrol_report(demo_session, "370783001000", date(2026, 5, 1))
    print(f.head(10).to_string(), len(f), time.time()-t)
    t=time.time()
    print(ss.simulate(demo_session, end=datetime(2026, 5, 1, 8, tzinfo=UTC)), time.time()-t)
    print(layer.sensors_layer(demo_session)["state"].value_counts())
