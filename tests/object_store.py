"""A real S3 server for tests (the ``s3`` fixture, registered in ``tests/conftest.py``): moto's, on a free loopback port, with IAM checks and injectable throttling.

moto answers the S3 REST API over HTTP like any S3-compatible store (MinIO, Ceph), so everything the code does
goes through s3fs, aiobotocore and the network exactly as it would in production. Requests are signed and
checked against an IAM policy that denies ``s3:GetObject`` under any ``denied/`` prefix, so access denied is
the server's own answer. :class:`Faults` sits in front of the server and answers chosen object reads with
``503 SlowDown``, the way S3 throttles.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DENY_READS_UNDER = "denied"
REGION = "us-east-1"
_SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
              b"<Message>Please reduce your request rate.</Message></Error>")


class Faults:
    """WSGI middleware: the next ``count`` GETs of a key (-1: every one) are answered ``503 SlowDown``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.rules: dict[str, list[int]] = {}  # path -> [requests to let through first, requests to throttle]
        self.throttled: dict[str, int] = {}
        self.lock = threading.Lock()

    def throttle(self, bucket: str, key: str, count: int) -> None:
        """Throttle the next ``count`` reads of ``s3://bucket/key`` (-1: all of them)."""
        self.throttle_path(f"/{bucket}/{key}", count)

    def throttle_path(self, path: str, count: int, after: int = 0) -> None:
        """Throttle ``count`` GETs of ``path`` (``/bucket`` is its listing) once ``after`` have gone through."""
        with self.lock:
            self.rules[path] = [after, count]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        left = 0
        with self.lock:
            rule = self.rules.get(path) if environ["REQUEST_METHOD"] == "GET" else None
            if rule is not None and rule[0] > 0:
                rule[0] -= 1
            elif rule is not None and rule[1]:
                left = rule[1]
                rule[1] = left - 1 if left > 0 else left
                self.throttled[path] = self.throttled.get(path, 0) + 1
        if left:
            start_response("503 Slow Down", [("Content-Type", "application/xml"),
                                              ("Content-Length", str(len(_SLOW_DOWN)))])
            return [_SLOW_DOWN]
        return self.app(environ, start_response)


@dataclass
class S3Server:
    """The running server: its endpoint, the IAM credentials that pass its checks, and its fault injector."""

    endpoint: str
    access_key: str
    secret_key: str
    faults: Faults

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client (or a worker process) at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": REGION,
                # Never look for an instance role: nothing but this loopback server is ever asked.
                "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self) -> Any:
        """A boto3 S3 client of this server."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=REGION)


def _start() -> tuple[S3Server, Any]:
    import boto3
    import moto.settings
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    faults = Faults(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, faults, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="moto-s3").start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    iam = boto3.client("iam", endpoint_url=endpoint, aws_access_key_id="setup", aws_secret_access_key="setup",
                       region_name=REGION)
    iam.create_user(UserName="annotate")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::*/{DENY_READS_UNDER}/*"}]}
    iam.put_user_policy(UserName="annotate", PolicyName="annotate", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="annotate")["AccessKey"]
    moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # from now on every request is signed and checked
    return S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"], faults), server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One moto S3 server for the whole test session; tests that use it skip where moto or s3fs is missing."""
    pytest.importorskip("moto", reason="moto[server] is not installed (pip install -e '.[test]')")
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e '.[test]')")
    import moto.settings

    previous = moto.settings.INITIAL_NO_AUTH_ACTION_COUNT
    running, server = _start()
    yield running
    server.shutdown()
    moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = previous


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """The server, with this process's AWS variables pointing at it and no cached s3fs clients."""
    import s3fs

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)
    s3fs.S3FileSystem.clear_instance_cache()
    yield s3_server
    s3fs.S3FileSystem.clear_instance_cache()


def new_bucket(server: S3Server) -> str:
    """A fresh, empty bucket."""
    name = f"faces-{uuid.uuid4().hex[:10]}"
    server.client().create_bucket(Bucket=name)
    return name


def upload_folder(server: S3Server, folder: Path, bucket: str, prefix: str) -> list[str]:
    """Upload every file under ``folder`` to ``s3://bucket/prefix/...``; their URIs, in order."""
    client = server.client()
    uris = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = f"{prefix}/{path.relative_to(folder).as_posix()}"
        client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        uris.append(f"s3://{bucket}/{key}")
    return uris


def put(server: S3Server, uri: str, data: bytes) -> None:
    """Write one object."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    server.client().put_object(Bucket=bucket, Key=key, Body=io.BytesIO(data))


def get(server: S3Server, uri: str) -> bytes:
    """Read one object."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
