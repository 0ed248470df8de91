"""The retraining loop as a user runs it: export, correct, train, activate, reannotate, export again."""

import csv

from click.testing import CliRunner

from annotator.cli import main
from annotator.images.portraits import write_portrait_folder


def run(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def exported(path):
    with path.open() as handle:
        return {(row["path"], row["face_index"]): row for row in csv.DictReader(handle)}


def test_export_label_train_activate_reannotate_changes_exactly_what_it_should(settings, untrained_chain, tmp_path):
    write_portrait_folder(tmp_path / "photos", 24, seed=5)
    run("submit", str(tmp_path / "photos"), "--faces", "aligned", "--wait")
    run("export", "-o", str(tmp_path / "before.csv"))
    before = exported(tmp_path / "before.csv")

    corrected = sorted(before)[:3]  # a reviewer sets the eyes of three faces
    with (tmp_path / "checked.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sha256", "eyes"])
        for key in corrected:
            writer.writerow([before[key]["sha256"], "1.0"])
    assert "imported 3 labels for 3 faces" in run("labels", "import", str(tmp_path / "checked.csv")).output

    run("export", "-o", str(tmp_path / "labels.csv"))
    trained = run("train", "eyes", "--data", str(tmp_path / "labels.csv"), "--epochs", "1", "--activate", "--force")
    assert "eyes@2" in trained.output
    assert "stale" in run("status").output
    run("reannotate", "--wait")
    run("export", "-o", str(tmp_path / "after.csv"))
    after = exported(tmp_path / "after.csv")

    assert after.keys() == before.keys()
    for key, row in after.items():
        unchanged = {c for c in row if not c.startswith("eyes")}
        assert {c: row[c] for c in unchanged} == {c: before[key][c] for c in unchanged}  # other attributes untouched
        if key in corrected:  # labels still win over the new model
            assert (row["eyes"], row["eyes_version"]) == ("1.0", "label:checked.csv")
        else:
            assert row["eyes_version"] == "eyes@2"
