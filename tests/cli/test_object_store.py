"""The commands a user runs on images in a real S3 server (moto): submit, export to the bucket, show, labels."""

from __future__ import annotations

import csv
import io
import json

from click.testing import CliRunner

from annotator.cli import main
from tests.conftest import write_faces
from tests.object_store import get, new_bucket, upload_folder


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_submit_a_bucket_then_export_show_and_label_from_it(settings, untrained_chain, s3, tmp_path):
    bucket = new_bucket(s3)
    write_faces(tmp_path / "faces", 6)
    uris = upload_folder(s3, tmp_path / "faces", bucket, "batch1")

    submitted = invoke("submit", f"s3://{bucket}/batch1", "--faces", "aligned", "--wait")
    assert submitted.exit_code == 0, submitted.output
    assert "done 6" in submitted.output and f"s3://{bucket}/batch1" in submitted.output

    exported = invoke("export", "-o", f"s3://{bucket}/out/labels.csv")
    assert exported.exit_code == 0, exported.output
    assert f"manifest s3://{bucket}/out/labels.csv.manifest.json" in exported.output
    rows = list(csv.DictReader(io.StringIO(get(s3, f"s3://{bucket}/out/labels.csv").decode())))
    assert sorted(row["path"] for row in rows) == uris
    manifest = json.loads(get(s3, f"s3://{bucket}/out/labels.csv.manifest.json"))
    assert manifest["files"] == ["labels.csv"] and manifest["counts"]["total"] == 6

    split = invoke("export", "--format", "folders", "--split", "train=0.5,val=0.5", "-o", f"s3://{bucket}/out/faces")
    assert split.exit_code == 0, split.output
    listed = s3.client().list_objects_v2(Bucket=bucket, Prefix="out/faces/")["Contents"]
    keys = {item["Key"] for item in listed}
    assert "out/faces/manifest.json" in keys and len([k for k in keys if k.endswith(".png")]) == 6
    refused = invoke("export", "--format", "folders", "-o", f"s3://{bucket}/out/faces")
    assert refused.exit_code == 1 and "not empty" in refused.output and "Traceback" not in refused.output
    refused = invoke("export", "-o", f"s3://{bucket}/batch1")
    assert refused.exit_code == 1 and "holds objects" in refused.output

    shown = invoke("show", uris[0], "--faces", "aligned", "-o", str(tmp_path / "sheet.png"))
    assert shown.exit_code == 0, shown.output
    assert "face 0: " in shown.output and "(gender@1)" in shown.output and ", now" not in shown.output  # recorded
    assert (tmp_path / "sheet.png").stat().st_size > 0
    missing = invoke("show", f"s3://{bucket}/batch1/nothing.png")
    assert missing.exit_code == 1 and "missing" in missing.output

    tasks_file = tmp_path / "tasks.json"
    assert invoke("labels", "export", "-o", str(tasks_file)).exit_code == 0
    tasks = json.loads(tasks_file.read_text())
    assert sorted(task["data"]["image"] for task in tasks) == uris  # what Label Studio's S3 storage resolves
    assert invoke("labels", "export", "-o", f"s3://{bucket}/ls/tasks.json").exit_code == 0
    assert json.loads(get(s3, f"s3://{bucket}/ls/tasks.json")) == tasks
    assert get(s3, f"s3://{bucket}/ls/tasks.label_config.xml") == (tmp_path / "tasks.label_config.xml").read_bytes()
    checked = tmp_path / "checked.csv"
    checked.write_text(f"path,eyes\n{uris[2]},1\n")
    imported = invoke("labels", "import", str(checked))
    assert imported.exit_code == 0 and "imported 1 labels" in imported.output
    again = invoke("export", "--format", "jsonl")
    row = next(json.loads(line) for line in again.output.splitlines() if json.loads(line)["path"] == uris[2])
    assert row["eyes"] == 1.0 and row["eyes_version"] == "label:checked.csv"


def test_submit_without_a_source_or_with_two_is_a_message(settings, untrained_chain, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("# nothing listed\n\n")
    for args in ([], [str(tmp_path), "--from-list", str(listing)]):
        result = invoke("submit", *args)
        assert result.exit_code == 1 and "Give one source" in result.output
    result = invoke("submit", "--from-list", str(listing))
    assert result.exit_code == 1 and "lists no paths or URIs" in result.output
    result = invoke("submit", "--from-list", str(tmp_path / "absent.txt"))
    assert result.exit_code == 1 and "List not found" in result.output
