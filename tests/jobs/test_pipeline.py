from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select

from annotator.cli import main
from annotator.errors import NoActiveModelError, SourceError
from annotator.faces.modes import ALIGNED_FACES
from annotator.jobs import pipeline
from annotator.jobs.orchestration import submit_source
from annotator.jobs.pipeline import process_chunk
from db.models import Face, Image, ImageStatus, Job, JobChunk, JobImage, ModelVersion, Prediction
from db.session import transaction
from tests.conftest import write_faces
from tests.recorded_jobs import create_job


def run_job(factory, settings, folder, chunk_size=4):
    """Record and run a job of aligned faces the way `annotate submit` does without a broker."""
    return submit_source(settings, factory, folder, chunk_size=chunk_size, faces=ALIGNED_FACES)


def statuses(factory, job_id):
    with factory() as session:
        rows = session.execute(select(JobImage.status, func.count()).where(JobImage.job_id == job_id)
                               .group_by(JobImage.status))
        return {status: count for status, count in rows}


def test_a_job_annotates_every_image_with_every_model(factory, settings, untrained_chain, tmp_path):
    write_faces(tmp_path / "photos", 10)
    job = run_job(factory, settings, tmp_path / "photos")
    assert job.chunks == [0, 1, 2]
    assert statuses(factory, job.job_id) == {ImageStatus.DONE.value: 10}
    with factory() as session:
        assert session.get(Job, job.job_id).status == "finished"
        predictions = session.scalars(select(Prediction)).all()
    assert len(predictions) == 10 * 4
    assert {p.model_version_id for p in predictions} == set(untrained_chain)
    for p in predictions:
        assert 0.0 <= p.value <= 1.0
        if p.attribute == "gender":
            assert p.extra["male_prob"] + p.extra["female_prob"] == pytest.approx(1.0, abs=1e-5)


def test_a_redelivered_chunk_writes_nothing_twice(factory, settings, untrained_chain, tmp_path):
    write_faces(tmp_path / "photos", 6)
    job = run_job(factory, settings, tmp_path / "photos")
    with transaction(factory) as session:  # every row written, yet the chunks run again (as after `jobs retry`)
        session.execute(JobImage.__table__.update().values(status=ImageStatus.PENDING.value))
        session.execute(JobChunk.__table__.update().values(status="queued"))
        session.execute(Job.__table__.update().values(status="running"))
    for chunk in job.chunks:
        process_chunk(factory, settings, job.job_id, chunk)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == 6 * 4
        assert session.scalar(select(func.count()).select_from(Face)) == 6
        assert session.get(Job, job.job_id).status == "finished"


def test_batched_results_equal_one_image_at_a_time(factory, settings, untrained_chain, tmp_path):
    from annotator.models.chain import load_chain, run_chain
    from annotator.models.store import active_chain_versions

    faces = np.random.default_rng(1).random((5, 120, 120, 3), dtype=np.float32)
    with factory() as session:
        chain = load_chain(active_chain_versions(session), settings.home)
    batch = run_chain(chain, faces)
    for i in range(5):
        single = run_chain(chain, faces[i : i + 1])
        for name, values in batch.items():
            assert np.allclose(values[i], single[name][0], atol=1e-5)


def test_resubmitting_an_unchanged_folder_does_no_model_work(factory, settings, untrained_chain, tmp_path):
    write_faces(tmp_path / "photos", 5)
    run_job(factory, settings, tmp_path / "photos")
    with transaction(factory) as session:
        again = create_job(session, tmp_path / "photos", chunk_size=4, faces=ALIGNED_FACES)
    assert again.chunks == [] and again.skipped == 5
    with factory() as session:
        assert session.get(Job, again.job_id).status == "finished"


def test_images_another_job_annotated_after_this_one_was_recorded_are_skipped(factory, settings, untrained_chain,
                                                                              tmp_path, monkeypatch):
    write_faces(tmp_path / "all" / "first", 6)
    write_faces(tmp_path / "all" / "later", 2, seed=1)
    with transaction(factory) as session:  # two overlapping submits, both recorded before either runs
        first = create_job(session, tmp_path / "all" / "first", chunk_size=4, faces=ALIGNED_FACES)
        both = create_job(session, tmp_path / "all", chunk_size=4, faces=ALIGNED_FACES)
    for chunk in first.chunks:
        process_chunk(factory, settings, first.job_id, chunk)
    extracted: list[str] = []
    real_extract = pipeline.extract_images

    def counting_extract(items, *args, **kwargs):
        extracted.extend(Path(item.path).parent.name for item in items)
        return real_extract(items, *args, **kwargs)

    monkeypatch.setattr(pipeline, "extract_images", counting_extract)
    for chunk in both.chunks:
        process_chunk(factory, settings, both.job_id, chunk)
    assert extracted == ["later", "later"]  # the first job's six images are not decoded or run again
    assert statuses(factory, both.job_id) == {ImageStatus.SKIPPED.value: 6, ImageStatus.DONE.value: 2}
    with factory() as session:
        skipped = session.scalars(select(JobImage).where(JobImage.job_id == both.job_id,
                                                         JobImage.status == ImageStatus.SKIPPED.value)).all()
        assert {(m.reason, Path(m.path).parent.name) for m in skipped} == {("annotated", "first")}
        assert session.scalar(select(func.count()).select_from(Prediction)) == 8 * 4
        assert session.get(Job, both.job_id).status == "finished"


def test_duplicate_content_is_annotated_once(factory, settings, untrained_chain, tmp_path):
    paths = write_faces(tmp_path / "photos", 2)
    (tmp_path / "photos" / "copy.png").write_bytes(paths[0].read_bytes())
    job = run_job(factory, settings, tmp_path / "photos")
    assert statuses(factory, job.job_id) == {ImageStatus.DONE.value: 2, ImageStatus.SKIPPED.value: 1}


def test_broken_files_get_reason_codes_and_never_fail_their_chunk(factory, settings, untrained_chain, tmp_path):
    folder = tmp_path / "photos"
    paths = write_faces(folder, 3)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.png").write_bytes(paths[0].read_bytes()[:200])
    job = run_job(factory, settings, folder, chunk_size=2)
    with factory() as session:
        rows = session.execute(select(JobImage.path, JobImage.reason).where(JobImage.status == ImageStatus.FAILED.value))
        failed = {path: reason for path, reason in rows}
    assert failed == {str(folder / "empty.jpg"): "not_an_image", str(folder / "truncated.png"): "truncated"}
    assert statuses(factory, job.job_id)[ImageStatus.DONE.value] == 3


def test_missing_and_empty_folders_are_errors(factory, settings, untrained_chain, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with transaction(factory) as session:
        with pytest.raises(SourceError, match="Folder not found"):
            create_job(session, tmp_path / "missing", chunk_size=4, faces=ALIGNED_FACES)
        with pytest.raises(SourceError, match="No images found"):
            create_job(session, tmp_path / "empty", chunk_size=4, faces=ALIGNED_FACES)


def test_submitting_without_models_says_how_to_get_them(factory, settings, tmp_path):
    write_faces(tmp_path / "photos", 1)
    with transaction(factory) as session, pytest.raises(NoActiveModelError, match="annotate models demo"):
        create_job(session, tmp_path / "photos", chunk_size=4, faces=ALIGNED_FACES)


def test_a_file_changed_after_submission_is_not_annotated_under_its_old_hash(factory, settings, untrained_chain,
                                                                              tmp_path):
    paths = write_faces(tmp_path / "photos", 2)
    with transaction(factory) as session:
        job = create_job(session, tmp_path / "photos", chunk_size=4, faces=ALIGNED_FACES)
    write_faces(tmp_path / "other", 1, seed=9)[0].replace(paths[0])
    process_chunk(factory, settings, job.job_id, 0)
    with factory() as session:
        rows = session.execute(select(JobImage.path, JobImage.status, JobImage.reason).order_by(JobImage.path)).all()
    assert [(status, reason) for _, status, reason in rows] == [("failed", "changed"), ("done", None)]


def test_a_streamed_job_hands_out_chunks_while_recording_and_finishes_once(factory, settings, untrained_chain,
                                                                          tmp_path):
    from annotator.jobs.recording import record_job

    write_faces(tmp_path / "photos", 10)
    write_faces(tmp_path / "photos" / "again", 2)  # the same bytes as face_000 and face_001: duplicates
    seen: list[tuple[int, list[int], str]] = []

    def run_now(job_id, chunks):
        with factory() as session:
            status = session.get(Job, job_id).status
        seen.append((job_id, chunks, status))
        for chunk in chunks:  # a fast worker: the chunk runs before the rest of the job is recorded
            process_chunk(factory, settings, job_id, chunk)

    job = record_job(factory, tmp_path / "photos", chunk_size=4, faces=ALIGNED_FACES, on_chunks=run_now)
    assert [chunks for _, chunks, _ in seen] == [[0], [1], [2]]
    assert [status for _, _, status in seen[:-1]] == ["recording", "recording"]  # never finished early
    assert (job.total, job.skipped, job.chunks) == (12, 2, [0, 1, 2])
    assert statuses(factory, job.job_id) == {ImageStatus.DONE.value: 10, ImageStatus.SKIPPED.value: 2}
    with factory() as session:
        record = session.get(Job, job.job_id)
        assert record.status == "finished" and record.chunks == 3


def test_a_job_cancelled_while_recording_stays_cancelled(factory, settings, untrained_chain, tmp_path):
    from annotator.jobs.operations import cancel_job
    from annotator.jobs.recording import record_job

    write_faces(tmp_path / "photos", 6)

    def cancel(job_id, chunks):
        with transaction(factory) as session:
            if session.get(Job, job_id).status == "recording":
                cancel_job(session, job_id)

    job = record_job(factory, tmp_path / "photos", chunk_size=4, faces=ALIGNED_FACES, on_chunks=cancel)
    with factory() as session:
        assert session.get(Job, job.job_id).status == "cancelled"
    assert statuses(factory, job.job_id) == {ImageStatus.SKIPPED.value: 6}  # none left pending


def ctrl_c_in_the_second_chunk(factory, settings, folder, monkeypatch) -> int:
    """Run a submit without a broker that gets Ctrl-C once its second chunk is taken; the job's id."""
    from annotator.jobs import pipeline

    annotate = pipeline._annotate

    def interrupted(factory, settings, lease):
        if lease.chunk == 1:
            raise KeyboardInterrupt
        return annotate(factory, settings, lease)

    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "_annotate", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_job(factory, settings, folder)
    with factory() as session:
        return session.scalar(select(Job.id).order_by(Job.id.desc()))


def test_a_submit_stopped_while_its_chunks_run_here_is_resumed_by_the_same_submit(factory, settings,
                                                                                   untrained_chain, tmp_path,
                                                                                   monkeypatch):
    write_faces(tmp_path / "photos", 10)
    job_id = ctrl_c_in_the_second_chunk(factory, settings, tmp_path / "photos", monkeypatch)
    with factory() as session:
        assert session.get(Job, job_id).status == "interrupted"
        chunks = dict(session.execute(select(JobChunk.chunk, JobChunk.status).where(JobChunk.job_id == job_id)).all())
    assert chunks == {0: "done", 1: "queued", 2: "queued"}  # the chunk it was running is queued again
    assert statuses(factory, job_id) == {ImageStatus.DONE.value: 4, ImageStatus.PENDING.value: 6}
    status = CliRunner().invoke(main, ["status", str(job_id)])
    assert "interrupted: the submit running this job here (no broker) stopped with 6 images to go" in status.output

    resumed = run_job(factory, settings, tmp_path / "photos")
    assert (resumed.job_id, resumed.resumed, resumed.total) == (job_id, 10, 10)
    assert statuses(factory, job_id) == {ImageStatus.DONE.value: 10}
    with factory() as session:
        assert session.get(Job, job_id).status == "finished"
        assert session.scalar(select(func.count()).select_from(Job)) == 1
        assert session.scalar(select(func.count()).select_from(Prediction)) == 10 * 4  # each image once


def test_a_job_whose_submit_was_killed_is_taken_up_once_its_chunk_lease_expired(factory, settings,
                                                                                untrained_chain, tmp_path,
                                                                                monkeypatch):
    from datetime import timedelta

    from sqlalchemy import update

    from db.models import utcnow

    write_faces(tmp_path / "photos", 10)
    job_id = ctrl_c_in_the_second_chunk(factory, settings, tmp_path / "photos", monkeypatch)

    def killed_running_chunk_1(lease_left: timedelta) -> None:  # as SIGKILL leaves it: running, chunk 1 leased
        with transaction(factory) as session:
            session.execute(update(Job).where(Job.id == job_id).values(status="running"))
            session.execute(update(JobChunk).where(JobChunk.job_id == job_id, JobChunk.chunk == 1).values(
                status="running", lease_owner="killed", lease_expires_at=utcnow() + lease_left))

    killed_running_chunk_1(timedelta(seconds=settings.lease_seconds))
    other = run_job(factory, settings, tmp_path / "photos")  # its lease is live: the submit may still run it
    assert other.job_id != job_id
    with factory() as session:
        assert session.get(Job, job_id).status == "running"

    killed_running_chunk_1(timedelta(seconds=-1))
    resumed = run_job(factory, settings, tmp_path / "photos")
    assert (resumed.job_id, resumed.resumed) == (job_id, 10)
    # the first chunk was done before the Ctrl-C; the other job has annotated the rest since
    assert statuses(factory, job_id) == {ImageStatus.DONE.value: 4, ImageStatus.SKIPPED.value: 6}
    with factory() as session:
        assert session.get(Job, job_id).status == "finished"


def test_a_chain_run_in_bfloat16_says_so_in_each_prediction_its_export_and_show(factory, settings, untrained_chain,
                                                                               tmp_path, monkeypatch):
    import csv
    import io

    from click.testing import CliRunner

    from annotator.cli import main

    write_faces(tmp_path / "photos", 3)
    write_faces(tmp_path / "more", 2, seed=1)
    runner = CliRunner()
    assert runner.invoke(main, ["submit", str(tmp_path / "photos"), "--faces", "aligned"]).exit_code == 0
    monkeypatch.setenv("ANNOTATE_PRECISION", "bfloat16")
    assert runner.invoke(main, ["submit", str(tmp_path / "more"), "--faces", "aligned"]).exit_code == 0
    with factory() as session:
        labels = {v.id: v.label for v in session.scalars(select(ModelVersion))}
        predictions = session.scalars(select(Prediction)).all()
    assert len(predictions) == 5 * 4
    precisions = {p.face_id: (p.extra or {}).get("precision") for p in predictions}
    assert sorted(precisions.values(), key=str) == [None] * 3 + ["bfloat16"] * 2

    exported = runner.invoke(main, ["export"], catch_exceptions=False)
    rows = list(csv.DictReader(io.StringIO(exported.output)))
    by_folder = {Path(row["path"]).parent.name: row for row in rows}
    gender = labels[untrained_chain[0]]
    assert by_folder["photos"]["gender_version"] == gender
    assert by_folder["more"]["gender_version"] == f"{gender}+bfloat16"
    assert all(row["eyes_version"].endswith("+bfloat16") == (Path(row["path"]).parent.name == "more")
               for row in rows)
    shown = runner.invoke(main, ["show", str(next((tmp_path / "more").iterdir())), "--faces", "aligned",
                                 "-o", str(tmp_path / "sheet.png")], catch_exceptions=False)
    assert f"({gender}+bfloat16)" in shown.output, shown.output


def test_a_submit_runs_the_chain_on_xnnpack_unless_told_and_both_engines_agree(factory, settings, untrained_chain,
                                                                              tmp_path, monkeypatch):
    from click.testing import CliRunner

    from annotator.cli import main
    from annotator.models.lite import LiteChain

    calls = []
    run_lite = LiteChain.__call__
    monkeypatch.setattr(LiteChain, "__call__", lambda self, faces: calls.append(len(faces)) or run_lite(self, faces))
    write_faces(tmp_path / "photos", 5)
    runner = CliRunner()

    def submitted_values() -> dict[tuple[str, str], float]:
        assert runner.invoke(main, ["submit", str(tmp_path / "photos"), "--faces", "aligned"]).exit_code == 0
        with factory() as session:
            values = {(path, p.attribute): p.value for path, p in session.execute(
                select(Image.path, Prediction).join(Face, Face.image_id == Image.id)
                .join(Prediction, Prediction.face_id == Face.id))}
            session.execute(delete(Prediction))
            session.commit()
        return values

    on_xnnpack = submitted_values()
    assert calls == [5]
    monkeypatch.setenv("ANNOTATE_CHAIN_ENGINE", "tensorflow")
    on_tensorflow = submitted_values()
    assert calls == [5]  # not called again
    assert on_xnnpack.keys() == on_tensorflow.keys() and len(on_xnnpack) == 5 * 4
    assert max(abs(on_xnnpack[key] - on_tensorflow[key]) for key in on_xnnpack) < 1e-5
