"""Engine and session factory; SQLite gets the pragmas a multi-process queue needs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_SECONDS = 10
"""A PostgreSQL server that does not answer is an error after this long, not a hang."""
FULL_DISK_MARKERS = ("disk is full", "no space left", "could not extend file", "diskfull")
UNREACHABLE_MARKERS = ("connect", "server closed", "terminating connection", "unable to open")
RECONNECT_PAUSES = (1, 2, 4, 8, 15, 15, 15)
"""Seconds between attempts to go on after the database went away (a restart, a failover), about a minute."""


def _configure_sqlite(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # WAL lets `status --watch` read while a worker writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def make_engine(url: str, application_name: str | None = None) -> Engine:
    """Create an engine for ``url`` (``sqlite:///...`` or ``postgresql+psycopg://...``).

    ``application_name`` labels PostgreSQL connections, so ``pg_stat_activity`` shows which worker holds which.
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    connect_args: dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    if application_name:
        connect_args["application_name"] = application_name
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def is_disconnect(error: BaseException) -> bool:
    """True for a lost or refused connection (a server restarting), which is worth trying again."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if not isinstance(error, DBAPIError):
        return False
    detail = str(error.orig or error).lower()
    return error.connection_invalidated or (isinstance(error, (OperationalError, InterfaceError))
                                            and any(marker in detail for marker in UNREACHABLE_MARKERS))


def outlasting_restarts(attempt: Callable[[bool], T], doing: str) -> T:
    """``attempt(after_a_loss)``, tried again after each of :data:`RECONNECT_PAUSES` while the database is away.

    ``after_a_loss`` is True on every try after the first, for an attempt that must first read back what the
    database kept of the failed one. Any other error, or the database still away after the last pause, is raised.
    """
    from sqlalchemy.exc import DBAPIError

    pauses = iter(RECONNECT_PAUSES)
    after_a_loss = False
    while True:
        try:
            return attempt(after_a_loss)
        except DBAPIError as error:
            pause = next(pauses, None)
            if pause is None or not is_disconnect(error):
                raise
            log.warning("lost the database while %s; trying again in %s s", doing, pause)
            time.sleep(pause)
            after_a_loss = True


def database_problem(error: BaseException) -> str | None:
    """One line a user can act on for a failure of the database (unreachable, disk full), else None."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if not isinstance(error, DBAPIError):
        return None
    detail = " ".join(str(error.orig or error).split()) or type(error).__name__
    if any(marker in detail.lower() for marker in FULL_DISK_MARKERS):
        return (f"The database's disk is full ({detail.rstrip('.')}); nothing of the failed transaction was written. "
                "Free some space and run the command again.")
    if isinstance(error, (OperationalError, InterfaceError)) and \
            any(marker in detail.lower() for marker in UNREACHABLE_MARKERS):
        return f"Cannot reach the database ({detail.rstrip('.')}): check ANNOTATE_DATABASE_URL and that the server runs."
    return f"The database failed: {detail}"


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def _raised_while_interrupted(error: BaseException) -> bool:
    """True when ``error`` was raised while a Ctrl-C was being handled."""
    seen: BaseException | None = error.__context__
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__context__
    return False


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on error.

    A Ctrl-C that lands while the database is answering leaves the connection mid-query, and the rollback then
    fails with a database error that would hide the Ctrl-C: the Ctrl-C is raised instead, that error its cause."""
    try:
        with factory() as session, session.begin():
            yield session
    except Exception as error:
        if _raised_while_interrupted(error):
            raise KeyboardInterrupt from error
        raise
