"""Where image bytes live: a local path or a URI of an object store (``s3://``, ``gs://``), read the same way.

Local paths go straight to the operating system, exactly as before. URIs go through fsspec (``s3fs``, ``gcsfs``:
``pip install 'annotate[cloud]'``), imported on first use, with each store's usual credentials and settings (for S3
the AWS variables and files, ``AWS_ENDPOINT_URL`` for MinIO or Ceph). Failures surface as the ``OSError`` subclasses
both raise: ``FileNotFoundError``, ``PermissionError``, and ``OSError(EBUSY)`` for a store that throttled every
retry of its client; :func:`is_throttled` recognises the other stores' spelling of it.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from annotator.errors import MissingExtraError, SourceError

CLOUD_HINT = "pip install 'annotate[cloud]'"
REMOTE_BUFFER = 8 << 20
"""Bytes fetched per request when streaming an object (one request for most photos)."""

_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$")
_THROTTLED = ("slowdown", "slow down", "reduce your request rate", "too many requests", "rate limit", "throttl")


@dataclass(frozen=True)
class StoredObject:
    """An object found under a prefix: its URI and size."""

    location: str
    size: int | None


def is_uri(location: str | Path) -> bool:
    """True for ``scheme://...`` (an object store), False for a local path."""
    return isinstance(location, str) and _URI.match(location) is not None


def normalised(location: str | Path) -> str:
    """The form recorded for a location: a URI as given (no trailing slash), a local path made absolute."""
    if is_uri(location):
        return str(location).rstrip("/")
    return os.path.abspath(os.path.expanduser(location))


def name_of(location: str) -> str:
    """The last part of a path or URI (``s3://b/a/x.jpg`` -> ``x.jpg``)."""
    return location.rstrip("/").rsplit("/", 1)[-1]


def filesystem(uri: str) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) of a URI; a clear error when its package is missing or unknown."""
    try:
        import fsspec
    except ImportError:
        raise MissingExtraError(f"{uri} is in an object store, which needs fsspec: {CLOUD_HINT}") from None
    try:
        return fsspec.core.url_to_fs(uri)
    except ImportError as error:
        raise MissingExtraError(f"{uri} needs a package that is not installed ({error}): {CLOUD_HINT}") from None
    except ValueError as error:
        raise SourceError(f"Unknown kind of URI {uri}: {error}.") from None


def _protocol(fs: Any) -> str:
    protocol = fs.protocol
    return protocol[0] if isinstance(protocol, (tuple, list)) else protocol


def _uri(fs: Any, path: str) -> str:
    return f"{_protocol(fs)}://{path}"


def is_throttled(error: BaseException) -> bool:
    """True when a store refused a request for its rate (S3 SlowDown, HTTP 429 or 503)."""
    if isinstance(error, OSError) and error.errno == errno.EBUSY:
        return True
    if getattr(error, "code", None) in (429, 503):
        return True
    return any(word in str(error).lower() for word in _THROTTLED)


@contextmanager
def open_input(location: str, size: int | None = None) -> Iterator[IO[bytes]]:
    """A binary file object of ``location``; ``size`` (from a listing) saves a store one request."""
    if not is_uri(location):
        with open(location, "rb") as handle:
            yield handle
        return
    fs, path = filesystem(location)
    options: dict[str, Any] = {"block_size": REMOTE_BUFFER}
    if size is not None:
        options["size"] = size
    with fs.open(path, "rb", **options) as handle:
        yield handle


def read_bytes(location: str) -> bytes:
    """Every byte of ``location`` (one request for an object)."""
    if not is_uri(location):
        return Path(location).read_bytes()
    fs, path = filesystem(location)
    return fs.cat_file(path)


S3_PAGE_LIMIT = 1000
"""The most keys S3 returns per listing request."""


def _s3_pages(fs: Any, path: str, page_size: int) -> Iterator[list[dict[str, Any]]]:
    """One ListObjectsV2 request per page (s3fs retries each), so only one page is ever in memory."""
    from fsspec.asyn import sync

    bucket, key, _ = fs.split_path(path)
    request: dict[str, Any] = {"Bucket": bucket, "Prefix": f"{key.rstrip('/')}/" if key else "",
                               "MaxKeys": min(page_size, S3_PAGE_LIMIT)}
    while True:
        page = sync(fs.loop, fs._call_s3, "list_objects_v2", **request)
        yield [{"name": f"{bucket}/{item['Key']}", "size": item["Size"], "type": "file"}
               for item in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return
        request["ContinuationToken"] = page["NextContinuationToken"]


def _pages(fs: Any, path: str, page_size: int) -> Iterator[list[dict[str, Any]]]:
    """Listing entries under ``path``, ``page_size`` at a time, fetched page by page where the store allows."""
    if _protocol(fs) == "s3" and hasattr(fs, "_call_s3"):
        yield from _s3_pages(fs, path, page_size)
        return
    found = sorted(fs.find(path, detail=True).values(), key=lambda entry: entry["name"])
    for start in range(0, len(found), page_size):
        yield found[start : start + page_size]


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split("/"))


def iter_objects(prefix: str, page_size: int = 1000) -> Iterator[list[StoredObject]]:
    """The objects under a URI prefix (recursively, names starting with a dot left out), page by page.

    A prefix that names one object yields that object. Raises :class:`SourceError` when the prefix cannot be
    listed (no such bucket, access denied, no credentials).
    """
    fs, path = filesystem(prefix)
    path = path.rstrip("/")
    listed = 0
    try:
        for page in _pages(fs, path, page_size):
            objects = []
            for entry in page:
                name = entry["name"]
                relative = name[len(path) + 1 :] if name.startswith(path + "/") else name_of(name)
                if entry.get("type") == "directory" or name.endswith("/") or _hidden(relative):
                    continue
                objects.append(StoredObject(_uri(fs, name), entry.get("size")))
            listed += len(objects)
            if objects:
                yield objects
        if not listed and fs.isfile(path):
            yield [StoredObject(_uri(fs, path), fs.size(path))]
    except FileNotFoundError as error:
        raise SourceError(f"Nothing at {prefix}: no such bucket or prefix ({_text(error)}).") from None
    except PermissionError as error:
        raise SourceError(f"Access denied listing {prefix}: {_text(error)}. Check the store's credentials.") from None
    except OSError as error:
        raise SourceError(f"Cannot list {prefix}: {_text(error)}.") from None
    except Exception as error:
        if type(error).__module__.split(".")[0] in ("botocore", "aiobotocore", "google", "gcsfs", "aiohttp"):
            raise SourceError(f"Cannot list {prefix}: {_text(error)}.") from None
        raise


def _text(error: BaseException) -> str:
    """An error's message without its final full stop, to end a sentence of ours."""
    return str(error).rstrip(". ")


def is_file(location: str) -> bool:
    """True when a file (or an object) is at ``location``."""
    if not is_uri(location):
        return Path(location).is_file()
    fs, path = filesystem(location)
    return bool(fs.isfile(path))


def is_folder(location: str) -> bool:
    """True for a local folder or a prefix that holds objects."""
    if not is_uri(location):
        return Path(location).is_dir()
    fs, path = filesystem(location)
    return fs.isdir(path)


def upload(local: Path, location: str) -> None:
    """Copy a local file to ``location`` (a URI, or a local path)."""
    if not is_uri(location):
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, location)
        return
    fs, path = filesystem(location)
    fs.put_file(str(local), path)


def join(location: str, name: str) -> str:
    """``location``/``name`` for paths and URIs alike."""
    if is_uri(location):
        return f"{location.rstrip('/')}/{name}"
    return str(Path(location) / name)
