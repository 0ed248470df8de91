"""Cold start on real photos: bootstrap the chain from teachers on UTKFace adults, judge it on other photos.

Marked ``acceptance`` (CI skips it; run with ``pytest -m acceptance tests/teachers``): it teaches 3,000 photos and
trains the four models with the seed recipe (tens of minutes on two shared cores). The figures go to the README.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_DATA

pytest.importorskip("dlib", reason="the teachers need pip install 'annotate[teachers]'")

UTKFACE = SHARED_DATA / "utkface-adults"
HELD_OUT = 500
SEED_RATIOS = {"eyes": 1.65, "mouth": 7.91, "background_mean": 1.87}
REGRESSORS = tuple(SEED_RATIOS)


def copy_split(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """The 3,000 photos split at random into a folder to bootstrap on and HELD_OUT other photos; true genders."""
    with (UTKFACE / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    order = np.random.default_rng(11).permutation(len(rows))
    mine, other = tmp_path / "my_photos", tmp_path / "other_photos"
    truth = {}
    for position, index in enumerate(order):
        row = rows[index]
        target = (other if position < HELD_OUT else mine) / row["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(UTKFACE / row["path"], target)
        truth[str(target.resolve())] = row["label"]
    return mine, other, truth


def annotate(log: Path, *args: str) -> float:
    """Run ``annotate ARGS`` as a user would, its output appended to ``log`` as it comes; minutes taken."""
    started = time.monotonic()
    with log.open("a") as handle:
        handle.write(f"$ annotate {' '.join(args)}\n")
        handle.flush()
        done = subprocess.run([sys.executable, "-m", "annotator.cli", *args], stdout=handle, stderr=subprocess.STDOUT,
                              check=False)
    assert done.returncode == 0, log.read_text()[-3000:]
    return (time.monotonic() - started) / 60


def exported(*args: str) -> list[dict[str, str]]:
    done = subprocess.run([sys.executable, "-m", "annotator.cli", "export", *args], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    return list(csv.DictReader(io.StringIO(done.stdout)))


@pytest.mark.real_data
@pytest.mark.acceptance
@pytest.mark.skipif(not UTKFACE.is_dir(), reason="needs ../shared/data/utkface-adults")
def test_bootstrap_on_utkface_gives_real_values_on_other_photos(settings, factory, tmp_path, capsys) -> None:
    mine, other, truth = copy_split(tmp_path)
    log = tmp_path / "acceptance.log"
    with capsys.disabled():
        print(f"\nprogress: {log}")
    bootstrap_minutes = annotate(log, "models", "bootstrap", str(mine), "--activate")
    teach_minutes = annotate(log, "teach", str(other))
    submit_minutes = annotate(log, "submit", str(other), "--wait")

    key = ("sha256", "face_index")
    teachers = {tuple(r[k] for k in key): r for r in exported("--source", "teachers")}
    chain = [r for r in exported() if r["path"] in truth and Path(r["path"]).is_relative_to(other)]
    boot_rows = [r for r in teachers.values() if Path(r["path"]).is_relative_to(mine)]
    assert len(chain) >= 0.95 * HELD_OUT

    # Every value names the version that made it; the teachers' name theirs.
    assert {r["gender_version"] for r in chain} == {"gender@1"}
    assert all(r["eyes_version"].startswith("teacher:") for r in teachers.values())

    female = np.array([float(r["female_prob"]) >= 0.5 for r in chain])
    is_female = np.array([truth[r["path"]] == "female" for r in chain])
    accuracy = float(np.mean(female == is_female))
    teacher_female = np.array([float(teachers[tuple(r[k] for k in key)]["female_prob"]) >= 0.5 for r in chain])
    teacher_accuracy = float(np.mean(teacher_female == is_female))

    figures = {"bootstrap_minutes": bootstrap_minutes, "teach_other_minutes": teach_minutes,
               "submit_other_minutes": submit_minutes, "gender_accuracy": accuracy,
               "teacher_gender_accuracy": teacher_accuracy, "held_out_faces": len(chain)}
    for name in REGRESSORS:
        pairs = [(float(r[name]), float(teachers[tuple(r[k] for k in key)][name]), float(r["female_prob"]) >= 0.5)
                 for r in chain if teachers.get(tuple(r[k] for k in key), {}).get(name)]
        model, teacher, gender = (np.array(column) for column in zip(*pairs))
        train = [(float(r[name]), float(r["female_prob"]) >= 0.5) for r in boot_rows if r[name]]
        train_values, train_gender = (np.array(column) for column in zip(*train))
        means = [train_values[train_gender == g].mean() for g in (False, True)]
        baseline = np.mean([np.mean((teacher[gender == g] - means[g]) ** 2) for g in (False, True)])
        mse = float(np.mean((model - teacher) ** 2))
        figures[f"{name}_ratio"] = baseline / mse
        figures[f"{name}_mse"] = mse
        figures[f"{name}_n"] = len(pairs)
        figures[f"{name}_spread"] = float(np.std(model))
        if name == "mouth":
            figures["mouth_on_open_mouths"] = float(model[teacher >= 0.5].mean())
            figures["mouth_on_closed_mouths"] = float(model[teacher <= 0.1].mean())
        if name == "eyes":
            figures["eyes_on_open_eyes"] = float(model[teacher >= 0.9].mean())
    with capsys.disabled():
        print("\nbootstrap acceptance figures:", {k: round(v, 4) for k, v in figures.items()})
    (log.parent / "figures.txt").write_text(repr(figures))

    assert accuracy >= 0.93, figures
    for name, seed_ratio in SEED_RATIOS.items():
        assert figures[f"{name}_ratio"] > seed_ratio, figures
        assert figures[f"{name}_spread"] > 0.05, figures  # no collapse to one value
    assert figures["mouth_on_open_mouths"] > 0.35, figures
    assert figures["eyes_on_open_eyes"] > 0.85, figures
    assert bootstrap_minutes + teach_minutes < 30, figures
