"""Ctrl-C and SIGTERM as one exception, held back while a record is being written.

A signal arriving in the middle of an MLflow write used to leave the SQLite store locked, the
run RUNNING and seven tracebacks. Inside ``shielded()`` a signal only marks itself; it is raised
as ``KeyboardInterrupt`` when the write is done. ``Interrupts.received`` says which signal came,
so the process can exit with 128 + its number (130 for Ctrl-C, 143 for SIGTERM).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """Within ``with Interrupts():`` SIGINT and SIGTERM raise ``KeyboardInterrupt`` (after any shielded write)."""

    active: Interrupts | None = None

    def __init__(self) -> None:
        self.received: int | None = None
        self._depth = 0
        self._pending = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in _SIGNALS}
        Interrupts.active = self
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        Interrupts.active = None

    def reinstall(self) -> None:
        """Take the signals back (Lightning ignores SIGINT after its own graceful shutdown)."""
        if self._previous:
            for s in _SIGNALS:
                signal.signal(s, self._handle)

    def _handle(self, signum: int, frame) -> None:
        if self.received is None:
            self.received = signum
        if self._depth:
            self._pending = True
            return
        raise KeyboardInterrupt

    @property
    def exit_code(self) -> int:
        """128 + the signal's number: 130 for Ctrl-C, 143 for SIGTERM."""
        return 128 + (self.received or signal.SIGINT)

    @contextmanager
    def held(self, absorb: bool = False) -> Iterator[None]:
        """Signals wait until the block ends; then one is raised, unless ``absorb`` (the caller reads
        ``received`` itself)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if self._pending and not self._depth:
            self._pending = False
            if not absorb:
                raise KeyboardInterrupt


@contextmanager
def shielded() -> Iterator[None]:
    """Run a write to the record whole: a signal during it is raised once it is done."""
    if Interrupts.active is None:
        yield
        return
    with Interrupts.active.held():
        yield


class RunKilled(Exception):
    """A run stopped by Ctrl-C or SIGTERM, its record closed KILLED; the process exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
