"""Where a load test's CPU went: the server's processes, the database's, the load generator's, and the
machine as a whole, between two samples. A latency target on a box whose cores are all busy cannot
be met by any server; these figures say which case a run is in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil


def _cpu(proc: psutil.Process, *, tree: bool) -> float:
    procs = [proc] + (proc.children(recursive=True) if tree else [])
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:  # ended between listing and reading
            continue
    return total


def postmaster(data_dir: Path) -> psutil.Process | None:
    """The local cluster's postmaster (``onemap db up``), or None when the database is elsewhere."""
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    try:
        return psutil.Process(int(pid_file.read_text().split()[0]))
    except (OSError, ValueError, IndexError, psutil.Error):
        return None


@dataclass
class Sample:
    server: float | None
    database: float | None
    client: float
    busy: float  # every core's non-idle seconds


class CpuProbe:
    """Sample CPU seconds of a server process tree, a postmaster tree and this process."""

    def __init__(self, server_pid: int | None = None, database: psutil.Process | None = None) -> None:
        self.server = psutil.Process(server_pid) if server_pid else None
        self.database = database
        self.me = psutil.Process()
        self.cores = psutil.cpu_count() or 1

    def sample(self) -> Sample:
        times = psutil.cpu_times()
        return Sample(_cpu(self.server, tree=True) if self.server else None,
                      _cpu(self.database, tree=True) if self.database else None,
                      _cpu(self.me, tree=False), sum(times) - times.idle - getattr(times, "iowait", 0.0))

    def text(self, a: Sample, b: Sample, seconds: float, requests: int) -> str:
        """One line: CPU seconds per part over the measured phase, per request and as cores."""
        n = max(requests, 1)

        def part(name: str, x: float | None, y: float | None) -> str:
            if x is None or y is None:
                return f"{name} n/a"
            used = y - x
            return f"{name} {used / n * 1000:.2f} ms/request ({used / seconds:.2f} cores)"

        busy = (b.busy - a.busy) / seconds
        return ("CPU in the measured phase: " + "; ".join([
            part("server", a.server, b.server), part("database", a.database, b.database),
            part("load generator", a.client, b.client)])
            + f"; machine busy {busy:.2f} of {self.cores} cores ({busy / self.cores:.0%})")
