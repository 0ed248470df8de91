"""Real Redis, PostgreSQL and worker processes on images that exist only in a real S3 server (moto)."""

from __future__ import annotations

import csv
import io
import shutil

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from annotator.cli import main
from db.models import ChunkStatus, JobChunk, JobImage, Prediction
from tests.object_store import get, new_bucket, upload_folder
from tests.services.helpers import ATTRIBUTES, write_photos
from tests.services.test_distributed import wait_finished

pytestmark = pytest.mark.services


def test_workers_read_the_images_from_the_store_and_a_resubmit_does_no_work(s3, factory, workers, tmp_path):
    bucket = new_bucket(s3)
    write_photos(tmp_path / "upload", 40)
    uris = upload_folder(s3, tmp_path / "upload", bucket, "batch1")
    shutil.rmtree(tmp_path / "upload")  # the bucket holds the only copy
    workers.env.update(s3.env)  # the standard AWS variables, and nothing else, tell the worker where to read
    workers.start("w1")

    result = CliRunner().invoke(main, ["submit", f"s3://{bucket}/batch1", "--faces", "aligned", "--chunk-size", "8",
                                       "--wait"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Queued 5 chunks" in result.output
    job = wait_finished(factory)
    with factory() as session:
        chunks = session.scalars(select(JobChunk).where(JobChunk.job_id == job.id)).all()
        done = session.scalar(select(func.count()).select_from(JobImage)
                              .where(JobImage.job_id == job.id, JobImage.status == "done"))
        assert session.scalar(select(func.count()).select_from(Prediction)) == 40 * ATTRIBUTES
    assert done == 40 and all(chunk.status == ChunkStatus.DONE.value for chunk in chunks)
    assert "Traceback" not in workers.log("w1")

    again = CliRunner().invoke(main, ["submit", f"s3://{bucket}/batch1", "--faces", "aligned"],
                               catch_exceptions=False)
    assert "Nothing to annotate" in again.output and "skipped 40" in again.output

    exported = CliRunner().invoke(main, ["export", "-o", f"s3://{bucket}/out/labels.csv"], catch_exceptions=False)
    assert exported.exit_code == 0, exported.output
    rows = list(csv.DictReader(io.StringIO(get(s3, f"s3://{bucket}/out/labels.csv").decode())))
    assert sorted(row["path"] for row in rows) == uris
