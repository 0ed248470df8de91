import csv
import io
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from annotator.cli import main
from annotator.exports.columns import csv_columns
from annotator.exports.formats.condition_data import CONDITION_DATA_COLUMNS
from annotator.faces.modes import ALIGNED_FACES
from tests.conftest import write_faces


def invoke(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_submit_status_and_export(settings, untrained_chain, tmp_path):
    write_faces(tmp_path / "photos", 7)
    (tmp_path / "photos" / "broken.jpg").write_text("not a jpeg")
    result = invoke("submit", str(tmp_path / "photos"), "--faces", "aligned", "--wait", "--chunk-size", "3")
    assert result.exit_code == 0, result.output
    assert "done 7" in result.output and "failed 1" in result.output
    assert "not_an_image" in result.output

    status = invoke("status", "1")
    assert "finished" in status.output and "broken.jpg" in status.output

    exported = invoke("export", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(exported.output)))
    assert len(rows) == 7
    assert list(rows[0]) == csv_columns()
    for row in rows:
        assert abs(float(row["male_prob"]) + float(row["female_prob"]) - 1.0) < 1e-5
        assert all(0.0 <= float(row[name]) <= 1.0 for name in ("eyes", "mouth", "background_mean"))
        assert row["gender_version"] == "gender@1"

    out = tmp_path / "condition.csv"
    assert invoke("export", "--format", "condition-data", "-o", str(out)).exit_code == 0
    lines = out.read_text().splitlines()
    assert lines[0].split(",") == CONDITION_DATA_COLUMNS and len(lines) == 8


def test_resubmit_says_nothing_to_do(settings, untrained_chain, tmp_path):
    write_faces(tmp_path / "photos", 3)
    invoke("submit", str(tmp_path / "photos"), "--faces", "aligned")
    result = invoke("submit", str(tmp_path / "photos"), "--faces", "aligned")
    assert "Nothing to annotate" in result.output and "skipped 3" in result.output


def test_bad_input_is_a_message_not_a_traceback(settings, untrained_chain, tmp_path):
    result = invoke("submit", str(tmp_path / "nowhere"))
    assert result.exit_code == 1
    assert "Folder not found" in result.output and "Traceback" not in result.output
    assert invoke("status", "99").exit_code == 1
    assert "No stored model eyes@9" in invoke("models", "activate", "eyes", "9").output


def test_models_list_marks_active_versions(settings, untrained_chain):
    output = invoke("models", "list").output
    assert "* gender@1" in output and "* background_mean@1" in output


def test_help_runs_as_a_real_command_without_heavy_imports(settings):
    command = str(Path(sys.executable).with_name("annotate"))
    result = subprocess.run([command, "--help"], check=False, capture_output=True, text=True, env=os.environ, timeout=60)
    assert result.returncode == 0 and "submit" in result.stdout
    probe = ("import sys; from annotator.cli import main; "
             "print(sorted(m for m in ('tensorflow', 'keras', 'celery', 'sqlalchemy') if m in sys.modules))")
    imported = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True, timeout=60)
    assert imported.stdout.strip() == "[]"


def test_jobs_retry_and_cancel_from_the_command_line(settings, factory, untrained_chain, tmp_path):
    from annotator.jobs.pipeline import process_chunk
    from db.session import transaction
    from tests.recorded_jobs import create_job

    paths = write_faces(tmp_path / "photos", 3)
    with transaction(factory) as session:
        job = create_job(session, tmp_path / "photos", chunk_size=10, faces=ALIGNED_FACES)
    paths[0].rename(tmp_path / "away.png")  # gone while the worker reads the chunk
    process_chunk(factory, settings, job.job_id, 0)
    assert "unreadable" in invoke("status", str(job.job_id)).output
    (tmp_path / "away.png").rename(paths[0])
    result = invoke("jobs", "retry", str(job.job_id))
    assert "Queued 1 chunks of job 1 again" in result.output
    assert "done 3" in result.output and "failed 0" in result.output
    assert "has no failed or stalled chunks" in invoke("jobs", "retry", "1").output
    cancelled = invoke("jobs", "cancel", "1")
    assert cancelled.exit_code == 1 and "only a running job can be cancelled" in cancelled.output


def test_labels_and_reannotate_from_the_command_line(settings, factory, untrained_chain, tmp_path):
    import json

    from tests.conftest import register_version

    write_faces(tmp_path / "photos", 3)
    invoke("submit", str(tmp_path / "photos"), "--faces", "aligned")
    exported = invoke("labels", "export", "-o", str(tmp_path / "tasks.json"), "--limit", "2",
                      "--path-prefix", f"{tmp_path}=files")
    assert exported.exit_code == 0, exported.output
    assert f"Wrote 2 tasks to {tmp_path / 'tasks.json'}" in exported.output
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert tasks[0]["data"]["image"].startswith("/data/local-files/?d=files/photos/face_00")
    assert (tmp_path / "tasks.label_config.xml").read_text().startswith("<View>")

    (tmp_path / "fix.csv").write_text("path,eyes,mouth\nphotos/face_000.png,1,\nphotos/face_001.png,,2\n")
    imported = invoke("labels", "import", str(tmp_path / "fix.csv"), "--source", "alice")
    assert imported.exit_code == 0
    assert "skipped line 3: mouth must be in [0, 1]. Received: '2'" in imported.output
    assert "imported 1 labels for 1 faces, skipped 1 rows" in imported.output
    missing = invoke("labels", "import", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 1 and "No labels file" in missing.output and "Traceback" not in missing.output

    assert "faces 3: all predictions are from the active model versions" in invoke("status").output
    register_version(factory, settings, "mouth")
    assert "faces 3: 3 stale (older model versions: mouth 3; missing: none)" in invoke("status").output
    stale_export = invoke("export")
    assert "3 stale" in stale_export.stderr and "stale" not in stale_export.stdout
    assert {row["mouth"] for row in csv.DictReader(io.StringIO(stale_export.stdout))} == {""}
    result = invoke("reannotate", "--wait")
    assert result.exit_code == 0, result.output
    assert "Job 2: 3 images with stale or missing predictions, 1 chunks to run, 0 files gone." in result.output
    assert "done 3" in result.output
    assert "faces 3: all predictions are from the active model versions" in invoke("status").output
    assert "Nothing to reannotate" in invoke("reannotate").output
    rows = list(csv.DictReader(io.StringIO(invoke("export").output)))
    assert {row["mouth_version"] for row in rows} == {"mouth@2"}
    assert sorted(row["eyes_version"] for row in rows) == ["eyes@1", "eyes@1", "label:alice"]
