"""Per-process resources of a worker: settings, engine and session factory, rebuilt after a fork."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from annotator.jobs.leases import LeaseKeeper
from annotator.settings import Settings
from db.session import make_engine, make_session_factory


@dataclass(frozen=True)
class WorkerContext:
    """What a task needs to reach the database, and the heartbeat thread renewing this process's leases."""

    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    keeper: LeaseKeeper


_contexts: dict[tuple[int, Settings], WorkerContext] = {}


def get_context() -> WorkerContext:
    """This process's context for the settings in its environment; a forked child never reuses its parent's
    connections, and changed settings (another database, another precision) get a context of their own, the
    previous one being closed (its heartbeat stopped, its connections let go)."""
    settings = Settings.from_env()
    key = (os.getpid(), settings)
    if key not in _contexts:
        for previous in [k for k in _contexts if k[0] == key[0]]:
            _close(_contexts.pop(previous))
        engine = make_engine(settings.database_url, application_name=f"annotate worker {socket.gethostname()}:{key[0]}")
        factory = make_session_factory(engine)
        _contexts[key] = WorkerContext(settings, engine, factory,
                                       LeaseKeeper(factory, settings.lease_seconds, settings.heartbeat_seconds))
    return _contexts[key]


def _close(context: WorkerContext) -> None:
    context.keeper.close()
    context.engine.dispose()
