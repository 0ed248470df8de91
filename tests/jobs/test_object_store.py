"""Jobs whose images live in a real S3 server (moto): submit a prefix or a list, resubmit, and every failure."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from annotator.errors import SourceError
from annotator.faces.modes import ALIGNED_FACES
from annotator.jobs.orchestration import run_chunks, submit_source
from db.models import Image, Job, JobChunk, JobImage, Prediction
from db.session import transaction
from tests.conftest import write_faces
from tests.object_store import DENY_READS_UNDER, new_bucket, put, upload_folder
from tests.recorded_jobs import create_job

ATTRIBUTES = 4


def members(factory, job_id):
    with factory() as session:
        rows = session.execute(select(JobImage.path, JobImage.status, JobImage.reason).where(JobImage.job_id == job_id))
        return {path: (status, reason) for path, status, reason in rows}


def test_a_prefix_is_annotated_from_the_store_and_a_resubmit_does_no_work(factory, settings, untrained_chain, s3,
                                                                         tmp_path):
    bucket = new_bucket(s3)
    write_faces(tmp_path / "faces" / "a", 5)
    write_faces(tmp_path / "faces" / "b" / "deeper", 4, seed=1)
    (tmp_path / "faces" / "notes.txt").write_text("not an image, not named like one")
    (tmp_path / "faces" / "broken.jpg").write_text("named like an image")
    uris = upload_folder(s3, tmp_path / "faces", bucket, "batch1")
    put(s3, f"s3://{bucket}/batch10/other.png", (tmp_path / "faces" / "a" / "face_000.png").read_bytes())

    job = submit_source(settings, factory, f"s3://{bucket}/batch1/", chunk_size=4, faces=ALIGNED_FACES)

    assert (job.total, job.failed, job.skipped, len(job.chunks)) == (10, 1, 0, 3)
    found = members(factory, job.job_id)
    assert set(found) == {uri for uri in uris if not uri.endswith("notes.txt")}  # batch10/ is another prefix
    assert found[f"s3://{bucket}/batch1/broken.jpg"] == ("failed", "not_an_image")
    assert sum(status == "done" for status, _ in found.values()) == 9
    with factory() as session:
        assert session.scalar(select(Job.source).where(Job.id == job.job_id)) == f"s3://{bucket}/batch1"
        assert session.scalar(select(func.count()).select_from(Prediction)) == 9 * ATTRIBUTES
        assert session.scalar(select(Image.path).limit(1)).startswith(f"s3://{bucket}/batch1/")

    again = submit_source(settings, factory, f"s3://{bucket}/batch1", chunk_size=4, faces=ALIGNED_FACES)
    assert (again.chunks, again.skipped) == ([], 9)
    assert {reason for _, reason in members(factory, again.job_id).values()} == {"annotated", "not_an_image"}
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == 9 * ATTRIBUTES


def test_a_large_prefix_is_listed_and_recorded_page_by_page(factory, settings, untrained_chain, s3, tmp_path):
    bucket = new_bucket(s3)
    write_faces(tmp_path / "faces", 23)
    upload_folder(s3, tmp_path / "faces", bucket, "many")
    committed = []

    def on_chunks(job_id, chunks):
        with factory() as session:  # what another process (a worker, `annotate status`) sees at this moment
            committed.append((chunks, session.scalar(select(Job.total).where(Job.id == job_id)),
                              session.scalar(select(func.count()).select_from(JobChunk))))

    from annotator.jobs.recording import record_job

    job = record_job(factory, f"s3://{bucket}/many", chunk_size=5, faces=ALIGNED_FACES, on_chunks=on_chunks)
    assert job.total == 23 and job.chunks == [0, 1, 2, 3, 4]
    # One listing page of 5 objects at a time: each chunk is committed (and queued) before the next page.
    assert committed == [([0], 5, 1), ([1], 10, 2), ([2], 15, 3), ([3], 20, 4), ([4], 23, 5)]


def test_duplicates_and_already_annotated_images_across_folder_and_store(factory, settings, untrained_chain, s3,
                                                                        tmp_path):
    bucket = new_bucket(s3)
    write_faces(tmp_path / "local", 3)
    upload_folder(s3, tmp_path / "local", bucket, "copy/one")
    upload_folder(s3, tmp_path / "local", bucket, "copy/two")
    first = submit_source(settings, factory, tmp_path / "local", chunk_size=8, faces=ALIGNED_FACES)
    assert first.skipped == 0
    job = submit_source(settings, factory, f"s3://{bucket}/copy", chunk_size=8, faces=ALIGNED_FACES)
    assert (job.total, job.skipped, job.chunks) == (6, 6, [])
    reasons = sorted(reason for _, reason in members(factory, job.job_id).values())
    assert reasons == ["annotated"] * 6  # same bytes as the local files: the content hash is what counts


def test_a_list_mixes_paths_and_uris_and_records_why_an_entry_failed(factory, settings, untrained_chain, s3,
                                                                     tmp_path):
    bucket = new_bucket(s3)
    local = write_faces(tmp_path / "local", 2)
    write_faces(tmp_path / "remote", 3, seed=5)
    remote = upload_folder(s3, tmp_path / "remote", bucket, "photos")
    denied = upload_folder(s3, tmp_path / "local", bucket, f"{DENY_READS_UNDER}")[0]
    put(s3, f"s3://{bucket}/photos/readme.txt", b"hello")
    listing = tmp_path / "lists" / "images.csv"
    listing.parent.mkdir()
    rows = ["path,comment", f"../local/{local[0].name},relative to the list", f"{local[1]},absolute", *remote,
            f"s3://{bucket}/photos/gone.jpg", denied, f"s3://{bucket}/photos/readme.txt", str(tmp_path / "nope.png"),
            remote[0]]
    listing.write_text("\n".join(rows) + "\n")

    job = submit_source(settings, factory, None, from_list=listing, chunk_size=4, faces=ALIGNED_FACES)

    found = members(factory, job.job_id)
    assert job.total == 9 and job.failed == 4  # remote[0] twice in the list: one entry
    assert found[str(local[0])] == found[str(local[1])] == found[remote[2]] == ("done", None)
    assert found[f"s3://{bucket}/photos/gone.jpg"] == ("failed", "missing")
    assert found[denied] == ("failed", "access_denied")
    assert found[f"s3://{bucket}/photos/readme.txt"] == ("failed", "not_an_image")
    assert found[str(tmp_path / "nope.png")] == ("failed", "unreadable")
    with factory() as session:
        assert session.scalar(select(Job.source).where(Job.id == job.job_id)) == str(listing)


def test_objects_that_change_or_vanish_after_submit_get_reason_codes(factory, settings, untrained_chain, s3,
                                                                     tmp_path):
    bucket = new_bucket(s3)
    write_faces(tmp_path / "faces", 4)
    uris = upload_folder(s3, tmp_path / "faces", bucket, "p")
    with transaction(factory) as session:
        job = create_job(session, f"s3://{bucket}/p", chunk_size=8, faces=ALIGNED_FACES)
    s3.client().delete_object(Bucket=bucket, Key="p/face_000.png")
    put(s3, uris[1], (tmp_path / "faces" / "face_003.png").read_bytes())  # edited in place
    run_chunks(settings, factory, job.job_id, job.chunks)
    found = members(factory, job.job_id)
    assert found[uris[0]] == ("failed", "missing")
    assert found[uris[1]] == ("failed", "changed")
    assert found[uris[2]] == found[uris[3]] == ("done", None)


def test_a_throttled_read_is_retried_with_backoff(factory, settings, untrained_chain, s3, tmp_path):
    bucket = new_bucket(s3)
    write_faces(tmp_path / "faces", 2)
    uris = upload_folder(s3, tmp_path / "faces", bucket, "slow")
    s3.faults.throttle(bucket, "slow/face_001.png", 2)
    job = submit_source(settings, factory, f"s3://{bucket}/slow", chunk_size=8, faces=ALIGNED_FACES)
    assert s3.faults.throttled[f"/{bucket}/slow/face_001.png"] == 2
    assert members(factory, job.job_id)[uris[1]] == ("done", None)


def test_a_read_throttled_on_every_retry_is_recorded_as_throttled(factory, settings, untrained_chain, s3, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own retries off: only s3fs's backoff (about 2 s)
    bucket = new_bucket(s3)
    write_faces(tmp_path / "faces", 2)
    uris = upload_folder(s3, tmp_path / "faces", bucket, "hot")
    s3.faults.throttle(bucket, "hot/face_000.png", -1)
    started = time.monotonic()
    job = submit_source(settings, factory, f"s3://{bucket}/hot", chunk_size=8, faces=ALIGNED_FACES)
    assert time.monotonic() - started > 1.0  # it backed off before giving up
    assert s3.faults.throttled[f"/{bucket}/hot/face_000.png"] >= 3
    assert members(factory, job.job_id) == {uris[0]: ("failed", "throttled"), uris[1]: ("done", None)}
    s3.faults.throttle(bucket, "hot/face_000.png", 0)


def test_a_prefix_that_cannot_be_listed_is_a_message(factory, settings, untrained_chain, s3):
    with pytest.raises(SourceError, match="no such bucket"):
        submit_source(settings, factory, "s3://no-such-bucket/photos", chunk_size=8, faces=ALIGNED_FACES)
    bucket = new_bucket(s3)
    with pytest.raises(SourceError, match="No objects found under"):
        submit_source(settings, factory, f"s3://{bucket}/empty", chunk_size=8, faces=ALIGNED_FACES)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_listing_that_fails_half_way_still_runs_what_was_recorded(factory, settings, untrained_chain, s3, tmp_path,
                                                                    monkeypatch):
    from annotator.jobs.recording import record_job

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own retries off: only s3fs's backoff (about 2 s)
    bucket = new_bucket(s3)
    write_faces(tmp_path / "faces", 5)
    upload_folder(s3, tmp_path / "faces", bucket, "p")
    s3.faults.throttle_path(f"/{bucket}", -1, after=2)  # listing pages of 2 objects: the third one fails
    queued = []
    with pytest.raises(SourceError, match=r"Cannot list .* Job \d+ annotates the 4 files recorded before"):
        record_job(factory, f"s3://{bucket}/p", chunk_size=2, faces=ALIGNED_FACES,
                   on_chunks=lambda job_id, chunks: queued.extend(chunks))
    s3.faults.throttle_path(f"/{bucket}", 0)
    assert queued == [0, 1]  # the four images listed first, in two chunks, all queued
    with factory() as session:
        job = session.scalar(select(Job))
        assert (job.status, job.total, job.chunks) == ("running", 4, 2)


def test_without_a_broker_a_listing_that_fails_half_way_annotates_what_was_recorded(factory, settings,
                                                                                     untrained_chain, s3, tmp_path,
                                                                                     monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    bucket = new_bucket(s3)
    write_faces(tmp_path / "faces", 5)
    upload_folder(s3, tmp_path / "faces", bucket, "p")
    s3.faults.throttle_path(f"/{bucket}", -1, after=2)
    with pytest.raises(SourceError, match=r"Cannot list .* Job \d+ annotates the 4 files recorded before"):
        submit_source(settings, factory, f"s3://{bucket}/p", chunk_size=2, faces=ALIGNED_FACES)
    s3.faults.throttle_path(f"/{bucket}", 0)
    with factory() as session:
        job = session.scalar(select(Job))
        assert (job.status, job.total) == ("finished", 4)
        assert session.scalar(select(func.count()).select_from(Prediction)) == 4 * ATTRIBUTES


def test_a_list_in_the_bucket_names_objects_relative_to_itself(factory, settings, untrained_chain, s3, tmp_path):
    bucket = new_bucket(s3)
    write_faces(tmp_path / "faces", 2)
    uris = upload_folder(s3, tmp_path / "faces", bucket, "photos")
    put(s3, f"s3://{bucket}/lists/batch.txt", b"../photos/face_000.png\nphotos-gone.png\n" + uris[1].encode())
    job = submit_source(settings, factory, None, from_list=f"s3://{bucket}/lists/batch.txt", chunk_size=4,
                        faces=ALIGNED_FACES)
    assert members(factory, job.job_id) == {uris[0]: ("done", None), uris[1]: ("done", None),
                                            f"s3://{bucket}/lists/photos-gone.png": ("failed", "missing")}
