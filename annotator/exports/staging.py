"""Exports appear whole or not at all: written beside their place, moved into it only once complete."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged(output: Path) -> Iterator[Path]:
    """A stand-in for ``output`` in a hidden folder beside it.

    Everything written next to the stand-in (split files, the manifest) moves into ``output``'s folder when the
    block ends without an error; after an error nothing moves and the hidden folder is removed, so a failed
    export leaves neither a truncated file nor a half-filled folder that would refuse the next attempt.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent))
    try:
        yield scratch / output.name
        for entry in sorted(scratch.iterdir()):
            target = output.parent / entry.name
            if entry.is_dir() and target.is_dir():
                target.rmdir()  # the output check lets only an empty folder through
            os.replace(entry, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
