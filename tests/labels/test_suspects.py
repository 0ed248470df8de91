"""`annotate labels suspects`: wrong labels of generated portraits rank first; bad requests are one line."""

import csv
import json
import sys

import pytest
from click.testing import CliRunner

from annotator.cli import main
from annotator.errors import MissingExtraError
from annotator.images.portraits import generate_portraits, write_portrait_folder
from annotator.labels.suspects import SuspectsError, find_suspects
from tests.conftest import fake_chain, record_annotations

SEED = 11


def labelled_portraits(factory, tmp_path, n, flipped_gender=(), flipped_eyes=(), columns=("gender", "eyes"),
                       chain=True):
    """Record ``n`` generated portraits and import their true labels, with the given ones flipped."""
    if chain:
        fake_chain(factory)
    paths = write_portrait_folder(tmp_path / "photos", n, seed=SEED)
    record_annotations(factory, paths)
    truth = generate_portraits(n, seed=SEED)
    labels = tmp_path / "checked.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", *columns])
        for i, path in enumerate(paths):
            gender = 1 - int(truth.gender[i]) if i in flipped_gender else int(truth.gender[i])
            eyes = 1 - float(truth.eyes[i]) if i in flipped_eyes else float(truth.eyes[i])
            cells = {"gender": ["male", "female"][gender], "eyes": f"{eyes:g}"}
            writer.writerow([f"photos/{path.name}", *(cells[c] for c in columns)])
    result = CliRunner().invoke(main, ["labels", "import", str(labels)])
    assert result.exit_code == 0, result.output
    return paths, truth


def ranks_of(rows, paths, indices):
    rank_by_path = {row["path"]: int(row["rank"]) for row in rows}
    return sorted(rank_by_path[str(paths[i])] for i in indices)


@pytest.mark.slow
def test_flipped_gender_labels_are_sent_to_review_first(settings, factory, tmp_path):
    flipped = set(range(3, 160, 10))  # 16 of 160
    paths, _ = labelled_portraits(factory, tmp_path, 160, flipped_gender=flipped, columns=("gender",))
    result = CliRunner().invoke(main, ["labels", "suspects", "--format", "label-studio", "--limit", "32",
                                       "-o", str(tmp_path / "review.json")])
    assert result.exit_code == 0, result.output
    assert "Ranked 160 labels" in result.output and "fold 3/3" in result.output
    tasks = json.loads((tmp_path / "review.json").read_text())
    assert len(tasks) == 32 and [t["data"]["suspect_rank"] for t in tasks] == list(range(1, 33))
    scores = [t["predictions"][0]["score"] for t in tasks]
    assert scores == sorted(scores) and 0 <= scores[0] <= scores[-1] <= 1
    assert {t["data"]["attribute"] for t in tasks} == {"gender"}
    assert {t["predictions"][0]["model_version"] for t in tasks} == {"label:checked.csv"}
    # A random order would put 3.2 of the 16 among the first 32; the seed recipe's models put most there.
    found = sum(t["data"]["path"] in {str(paths[i]) for i in flipped} for t in tasks)
    assert found >= 10, found
    # The review task shows the label as it stands, for the reviewer to keep or change.
    first = tasks[0]
    labelled = first["predictions"][0]["result"][0]["value"]["choices"][0]
    assert labelled in first["data"]["caption"] and first["data"]["sha256"] and first["data"]["method"] == "aligned"
    assert (tmp_path / "review.label_config.xml").read_text().startswith("<View>")


@pytest.mark.slow
def test_flipped_eyes_labels_rank_first_in_the_csv(settings, factory, tmp_path):
    truth = generate_portraits(120, seed=SEED)
    flipped = set(sorted(i for i in range(120) if truth.eyes[i] != 0.5)[::7])  # open as closed, closed as open
    paths, _ = labelled_portraits(factory, tmp_path, 120, flipped_eyes=flipped)
    result = CliRunner().invoke(main, ["labels", "suspects", "--attribute", "eyes", "-o", str(tmp_path / "s.csv")])
    assert result.exit_code == 0, result.output
    with (tmp_path / "s.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["rank"]) for row in rows] == list(range(1, 121))
    assert {row["attribute"] for row in rows} == {"eyes"} and {row["source"] for row in rows} == {"checked.csv"}
    scores = [float(row["score"]) for row in rows]
    assert scores == sorted(scores)
    top = ranks_of(rows, paths, flipped)
    assert sum(rank <= 2 * len(flipped) for rank in top) >= 0.6 * len(flipped), top
    assert abs(float(rows[0]["label"]) - float(rows[0]["prediction"])) > 0.3  # the first one disagrees


def test_no_labels_too_few_and_unknown_attributes_are_one_line_errors(settings, factory, tmp_path):
    fake_chain(factory)
    result = CliRunner().invoke(main, ["labels", "suspects"])
    assert result.exit_code != 0 and "No labels to check. Import labels with `annotate labels import FILE`" in \
        result.output and "Traceback" not in result.output
    labelled_portraits(factory, tmp_path, 12, columns=("gender",), chain=False)
    result = CliRunner().invoke(main, ["labels", "suspects"])
    assert "12 faces have a gender label; 3 folds need at least 15" in result.output
    for args, message in ((["--attribute", "hair"], "Unknown attribute 'hair'"),
                          (["--attribute", "mouth"], "No face has a mouth label"),
                          (["--format", "label-studio"], "give -o FILE")):
        result = CliRunner().invoke(main, ["labels", "suspects", *args])
        assert result.exit_code != 0 and message in result.output, result.output


def test_one_class_only_cannot_be_checked(settings, factory, tmp_path):
    fake_chain(factory)
    paths = write_portrait_folder(tmp_path / "photos", 20, seed=1)
    record_annotations(factory, paths)
    (tmp_path / "all.csv").write_text("path,gender\n" + "".join(f"photos/{p.name},male\n" for p in paths))
    assert CliRunner().invoke(main, ["labels", "import", str(tmp_path / "all.csv")]).exit_code == 0
    with pytest.raises(SuspectsError, match="Every gender label has the same value"), factory() as session:
        find_suspects(session, echo=lambda line: None)


def test_without_cleanlab_the_error_names_the_pip_command(settings, factory, monkeypatch):
    monkeypatch.setitem(sys.modules, "cleanlab", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'annotate\[quality\]'"), factory() as session:
        find_suspects(session)
