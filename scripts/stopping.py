"""How the demo's background children stop: on SIGTERM or Ctrl-C, or when the process that started
them is gone (``stop_with_parent``: a demo killed hard must not leave its children writing)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


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
