"""The load benchmark's CPU accounting: what it reads is this machine's real process times."""

import subprocess
import sys
import time

from scripts.bench_cpu import CpuProbe, postmaster


def test_probe_counts_a_child_tree_and_this_process(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time\nt=time.process_time()\n"
                              "while time.process_time() - t < 0.6: pass\ntime.sleep(5)"])
    try:
        probe = CpuProbe(child.pid, None)
        a = probe.sample()
        started = time.process_time()
        while time.process_time() - started < 0.3:  # this process: the load generator's share
            pass
        time.sleep(0.8)
        b = probe.sample()
    finally:
        child.kill()
        child.wait()
    assert b.server - a.server > 0.3  # the child burnt ~0.6 s after the first sample
    assert 0.25 < b.client - a.client < 1.0
    assert b.busy - a.busy > 0.5
    line = probe.text(a, b, seconds=1.0, requests=100)
    assert "server" in line and "database n/a" in line and "ms/request" in line and "machine busy" in line


def test_no_local_cluster_means_no_database_figure(tmp_path):
    assert postmaster(tmp_path) is None
    (tmp_path / "pgdata").mkdir()
    (tmp_path / "pgdata" / "postmaster.pid").write_text("not a pid\n")
    assert postmaster(tmp_path) is None
