"""Celery app factory and thin tasks over :mod:`annotator`'s plain functions.

``celery -A worker worker`` works: the app is built on first access to ``worker.app``, never at import.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):
        from worker.app import default_app

        return default_app()
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
