"""Ctrl-C and SIGTERM, raised where the command is and remembered until a long loop sees them.

Python drops an exception that a signal handler raises while a garbage-collection callback or a ``__del__`` runs
(it prints "Exception ignored in ..." and goes on), so a stop that arrives there would be lost: a submit would
go on recording, and exit 0. The handlers here also remember the stop, and the loops that take long (recording a
job, running its chunks, waiting for it) call :func:`raise_if_stopped` at every step.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``docker stop``, a scheduler), raised where Ctrl-C would be: the command stops the same
    way, leaving its job resumable rather than waiting for a lease to expire."""


_stops: list[type[KeyboardInterrupt]] = []
"""The stops received since the handlers were installed, in order."""


def _interrupt(signum: int, frame: object) -> None:
    _stops.append(KeyboardInterrupt)
    raise KeyboardInterrupt


def _terminate(signum: int, frame: object) -> None:
    _stops.append(Terminated)
    raise Terminated


def stop_like_ctrl_c() -> Callable[[], None]:
    """Handle SIGTERM as Ctrl-C, and remember both, from now on; returns what puts the previous handlers back.

    Ctrl-C is left ignored where it was (a command started in the background by a script). Only the main thread
    may set a handler: elsewhere (a command run from a thread) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous_term = signal.signal(signal.SIGTERM, _terminate)
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
        _stops.clear()

    return restore


def raise_if_stopped() -> None:
    """Raise the first stop received (KeyboardInterrupt or :class:`Terminated`), if any: where its handler's
    exception was dropped, the command stops here instead."""
    if _stops:
        raise _stops[0]
