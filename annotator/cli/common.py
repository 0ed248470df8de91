"""What every command shares: settings, the database, one-line errors, common options and the progress bar."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import wraps
from typing import TYPE_CHECKING, Any

import click

from annotator.errors import AnnotateError
from annotator.faces.modes import DEFAULT_MIN_FACE_SIZE, DEFAULT_MIN_SCORE
from annotator.settings import DEFAULT_QUEUE, Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from annotator.jobs.status import JobProgress


def load_settings() -> Settings:
    """The settings from the environment; a bad value is a one-line error."""
    try:
        return Settings.from_env()
    except ValueError as error:
        raise click.ClickException(str(error)) from None


def open_database(settings: Settings) -> sessionmaker[Session]:
    """Open the database; the default SQLite one is created and migrated on first use."""
    from db.session import make_engine, make_session_factory

    engine = make_engine(settings.database_url)
    if engine.dialect.name == "sqlite":
        settings.home.mkdir(parents=True, exist_ok=True)
        from db.migrate import upgrade

        upgrade(engine)
    return make_session_factory(engine)


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into a one-line message and exit code 1, never a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except AnnotateError as error:
            raise click.ClickException(str(error)) from None
        except ValueError as error:
            raise click.ClickException(str(error)) from None
        except Exception as error:
            message = _service_problem(error)
            if message is None:
                raise
            raise click.ClickException(message) from None

    return wrapper


def _service_problem(error: Exception) -> str | None:
    """One line for a database or broker failure (the modules are loaded only if a command used them)."""
    if "sqlalchemy" in sys.modules:
        from db.session import database_problem

        message = database_problem(error)
        if message is not None:
            return message
    if type(error).__module__.startswith(("kombu", "redis")):
        return f"The broker failed: {error}. Check ANNOTATE_BROKER_URL and that Redis is running."
    return None


def queue_option(help_text: str) -> Callable[..., Any]:
    """``--queue``, also read from ANNOTATE_QUEUE."""
    return click.option("--queue", default=DEFAULT_QUEUE, envvar="ANNOTATE_QUEUE", show_default=True, help=help_text)


def chunk_size_option() -> Callable[..., Any]:
    """``--chunk-size``, also read from ANNOTATE_CHUNK_SIZE."""
    return click.option("--chunk-size", type=click.IntRange(1), envvar="ANNOTATE_CHUNK_SIZE", default=None,
                        help="Images per task (default 256).")


def face_options(mode_help: str) -> Callable[..., Any]:
    """``--faces``, ``--min-face-size`` and ``--min-face-score``, passed to the command as one ``faces`` value."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(command)
        def wrapper(*args: Any, face_mode: str, min_face_size: int, min_face_score: float, **kwargs: Any) -> Any:
            from annotator.faces.modes import FaceMode, FaceOptions

            return command(*args, faces=FaceOptions(FaceMode(face_mode), min_face_size, min_face_score), **kwargs)

        options = [
            click.option("--faces", "face_mode", type=click.Choice(["detect", "aligned"]), default="detect",
                         show_default=True, help=mode_help),
            click.option("--min-face-size", type=click.IntRange(12), default=DEFAULT_MIN_FACE_SIZE,
                         show_default=True, help="With --faces detect: smallest face kept, in pixels of the photo."),
            click.option("--min-face-score", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                         default=DEFAULT_MIN_SCORE, show_default=True,
                         help="With --faces detect: lowest detector score kept."),
        ]
        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper

    return decorate


class _LiveBar:
    """A click progress bar that opens on the first :class:`JobProgress`, when the total is known."""

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack
        self._bar: Any = None
        self._started = time.monotonic()

    def _rate(self, _: object) -> str:
        seconds = time.monotonic() - self._started
        return f"{self._bar.pos / seconds:.1f} img/s" if seconds > 0 and self._bar.pos else ""

    def __call__(self, progress: JobProgress) -> None:
        if self._bar is None:
            self._bar = self._stack.enter_context(click.progressbar(
                length=progress.total, label="Annotating", show_eta=True, show_pos=True, item_show_func=self._rate))
        self._bar.update(progress.counted - self._bar.pos)


@contextmanager
def progress_bar() -> Iterator[Callable[[JobProgress], None]]:
    """A callback that draws a job's progress (images counted, rate, ETA); the bar closes on leaving."""
    with ExitStack() as stack:
        yield _LiveBar(stack)
