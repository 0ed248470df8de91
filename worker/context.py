"""Per-process resources of a worker: settings, engine and session factory, rebuilt after a fork."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from annotator.settings import Settings
from db.session import make_engine, make_session_factory


@dataclass(frozen=True)
class WorkerContext:
    """What a task needs to reach the database."""

    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]


_contexts: dict[tuple[int, str], WorkerContext] = {}


def get_context() -> WorkerContext:
    """This process's context; a forked child never reuses its parent's connections."""
    settings = Settings.from_env()
    key = (os.getpid(), settings.database_url)
    if key not in _contexts:
        engine = make_engine(settings.database_url, application_name=f"annotate worker {socket.gethostname()}:{key[0]}")
        _contexts[key] = WorkerContext(settings, engine, make_session_factory(engine))
    return _contexts[key]
