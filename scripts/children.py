"""The demo's background children (the YOLO runner, the live stream): how they start beside the
server and how they stop — on SIGTERM or Ctrl-C, with the demo, or by themselves when the process that
started them is gone (``stop_with_parent``: a demo killed hard must not leave its children writing)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def stop_signal(*, stop_with_parent: bool = False) -> Iterator[threading.Event]:
    """An event set by SIGTERM/SIGINT (or the parent's exit); the previous handlers come back after."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    if stop_with_parent:
        parent = os.getppid()

        def watch() -> None:
            while not stop.wait(2.0):
                if os.getppid() != parent:
                    stop.set()

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    try:
        yield stop
    finally:
        stop.set()  # ends the parent watch
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def child(args: list[str], *, log_path: Path, nice: int = 0) -> Iterator[subprocess.Popen]:
    """``onemap ARGS`` in a child process while the block runs, its output appended to ``log_path``;
    terminated afterwards (killed if it does not stop within 15 s)."""
    from gis.settings import PROJECT_ROOT

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "scripts.cli", *args], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=PROJECT_ROOT, env=env,
                                preexec_fn=(lambda: os.nice(nice)) if nice else None)  # noqa: PLW1509
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
