"""Split groups: re-encoded copies and one person's faces never straddle a split; the manifest counts groups."""

import csv
import json
import sys

import pytest
from PIL import Image

from annotator.errors import ExportError, MissingExtraError
from annotator.exports.options import DUPLICATE_THRESHOLD, ExportOptions
from annotator.exports.run import run_export
from annotator.images.perceptual import DEFAULT_THRESHOLD
from annotator.images.portraits import write_portrait_folder
from db.session import transaction
from tests.conftest import fake_chain, record_annotations
from tests.photos import ASTRONAUT_FACE, astronaut

SPLIT = {"train": 0.6, "val": 0.2, "test": 0.2}


def _copies(original, folder):
    """A re-encoded JPEG, a half-size PNG and a brightened JPEG of ``original``, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    picture = Image.open(original).convert("RGB")
    made = [folder / f"{original.stem}_q60.jpg", folder / f"{original.stem}_half.png",
            folder / f"{original.stem}_bright.jpg"]
    picture.save(made[0], "JPEG", quality=60)
    picture.resize((picture.width // 2, picture.height // 2)).save(made[1], "PNG")
    picture.point(lambda value: min(255, round(value * 1.1))).save(made[2], "JPEG", quality=85)
    return made


def _export(factory, tmp_path, **options):
    output = tmp_path / f"out-{len(list(tmp_path.glob('out-*.csv')))}.csv"
    with transaction(factory) as session:
        result = run_export(session, ExportOptions(split=SPLIT, **options), output, sys.stdout)
    with output.open(newline="") as handle:
        split_of = {row["sha256"]: row["split"] for row in csv.DictReader(handle)}
    return split_of, json.loads(result.manifest.read_text())


def test_the_cli_default_threshold_is_the_hashes_default():
    assert DUPLICATE_THRESHOLD == DEFAULT_THRESHOLD


def test_reencoded_and_resized_copies_never_land_on_another_side_of_a_split(factory, tmp_path):
    fake_chain(factory)
    originals = write_portrait_folder(tmp_path / "photos", 40, seed=3)
    families = {original: _copies(original, tmp_path / "copies") for original in originals}
    shas = record_annotations(factory, [*originals, *(copy for made in families.values() for copy in made)])
    seen_splits = set()
    for seed in range(4):
        split_of, manifest = _export(factory, tmp_path, seed=seed)
        for original, made in families.items():
            assert {split_of[shas[p.name]] for p in (original, *made)} == {split_of[shas[original.name]]}
        seen_splits |= set(split_of.values())
    assert seen_splits == set(SPLIT)
    groups = manifest["counts"]["groups"]
    assert groups["images"] == 160 and groups["groups"] <= 40
    assert groups["near_duplicates"]["threshold"] == DEFAULT_THRESHOLD
    assert groups["near_duplicates"]["images"] == 160 and groups["near_duplicates"]["unhashed"] == 0
    assert manifest["options"]["group_by"] == "image"


def test_a_zero_threshold_lets_copies_fall_apart_and_unreadable_images_stay_alone(factory, tmp_path):
    fake_chain(factory)
    originals = write_portrait_folder(tmp_path / "photos", 30, seed=4)
    families = {original: _copies(original, tmp_path / "copies") for original in originals}
    shas = record_annotations(factory, [*originals, *(copy for made in families.values() for copy in made)])
    originals[0].unlink()  # cannot be hashed any more: grouped with nothing, still exported
    split_of, manifest = _export(factory, tmp_path, duplicate_threshold=0)
    apart = sum(len({split_of[shas[p.name]] for p in (original, *made)}) > 1 for original, made in families.items())
    assert apart > 5  # what the default threshold prevents
    assert manifest["counts"]["groups"]["near_duplicates"]["unhashed"] == 1
    assert shas[originals[0].name] in split_of


def test_group_by_without_a_split_is_refused(factory, tmp_path):
    fake_chain(factory)
    with pytest.raises(ExportError, match="--group-by person says what a split keeps together; add --split"), \
            transaction(factory) as session:
        run_export(session, ExportOptions(group_by="person"), tmp_path / "x.csv", sys.stdout)


def _aligned_astronaut(folder):
    """The astronaut's face and three crops or re-encodes of it: one person, hashes too far apart to be joined."""
    folder.mkdir(parents=True, exist_ok=True)
    face = astronaut().crop(ASTRONAUT_FACE)
    variants = {"astronaut.png": face,
                "astronaut_crop5.jpg": face.crop((7, 8, face.width - 7, face.height - 8)),
                "astronaut_crop10.jpg": face.crop((15, 17, face.width - 15, face.height - 17)),
                "astronaut_shifted.jpg": face.crop((12, 0, face.width, face.height - 10))}
    for name, picture in variants.items():
        picture.save(folder / name, quality=80)
    return [folder / name for name in variants]


def test_group_by_person_keeps_crops_of_one_face_together(factory, tmp_path):
    pytest.importorskip("dlib")
    fake_chain(factory)
    crops = _aligned_astronaut(tmp_path / "astronaut")
    others = write_portrait_folder(tmp_path / "portraits", 12, seed=6)
    shas = record_annotations(factory, [*crops, *others])
    by_image, _ = _export(factory, tmp_path, seed=1)
    assert len({by_image[shas[p.name]] for p in crops}) > 1  # perceptual hashes alone let the crops fall apart
    for seed in range(3):
        split_of, manifest = _export(factory, tmp_path, seed=seed, group_by="person")
        assert len({split_of[shas[p.name]] for p in crops}) == 1
    persons = manifest["counts"]["groups"]["persons"]
    assert persons["threshold"] == 0.4 and persons["groups"] >= 1 and persons["faces"] >= 4
    # Generated portraits are cartoons to dlib: they form one "person", but never join the astronaut.
    assert split_of[shas[others[0].name]] in SPLIT


def test_group_by_person_without_the_extra_names_the_pip_command(factory, tmp_path, monkeypatch):
    from annotator.faces import embedding

    fake_chain(factory)
    record_annotations(factory, write_portrait_folder(tmp_path / "portraits", 3, seed=1))
    monkeypatch.setitem(sys.modules, "dlib", None)  # as if dlib were not installed
    embedding.load_descriptor_models.cache_clear()
    try:
        with pytest.raises(MissingExtraError, match=r"pip install 'annotate\[people\]'"), \
                transaction(factory) as session:
            run_export(session, ExportOptions(split=SPLIT, group_by="person"), tmp_path / "x.csv", sys.stdout)
    finally:
        embedding.load_descriptor_models.cache_clear()


def test_the_cli_prints_how_the_split_was_grouped(settings, factory, tmp_path):
    from click.testing import CliRunner

    from annotator.cli import main

    fake_chain(factory)
    originals = write_portrait_folder(tmp_path / "photos", 10, seed=3)
    record_annotations(factory, [*originals, *_copies(originals[0], tmp_path / "copies")])
    result = CliRunner().invoke(main, ["export", "-o", str(tmp_path / "x.csv"), "--split", "a=0.5,b=0.5"])
    assert result.exit_code == 0, result.output
    assert "Split 13 images as" in result.output and "hashes within 24 bits" in result.output


def test_submitted_copies_are_hashed_by_the_job_and_exported_on_one_side(settings, factory, untrained_chain,
                                                                         tmp_path):
    from click.testing import CliRunner
    from sqlalchemy import select

    from annotator.cli import main
    from db.models import Image as ImageRow

    originals = write_portrait_folder(tmp_path / "photos", 16, seed=8)
    families = {original: _copies(original, tmp_path / "photos" / "copies") for original in originals}
    runner = CliRunner()
    assert runner.invoke(main, ["submit", str(tmp_path / "photos"), "--faces", "aligned"]).exit_code == 0
    with factory() as session:  # the job hashed every image it decoded; the export needs no second decode
        assert None not in set(session.scalars(select(ImageRow.phash))) and len(list(session.scalars(
            select(ImageRow.phash)))) == 64
    for seed in range(3):
        out = tmp_path / f"split-{seed}.csv"
        result = runner.invoke(main, ["export", "-o", str(out), "--split", "train=0.5,val=0.25,test=0.25",
                                      "--seed", str(seed)])
        assert result.exit_code == 0, result.output
        with out.open(newline="") as handle:
            split_of = {row["path"]: row["split"] for row in csv.DictReader(handle)}
        for original, made in families.items():
            assert len({split_of[str(p)] for p in (original, *made)}) == 1
    groups = json.loads(out.with_name(out.name + ".manifest.json").read_text())["counts"]["groups"]
    assert groups["images"] == 64 and groups["near_duplicates"]["unhashed"] == 0
