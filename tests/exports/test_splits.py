"""Splits: stratified by gender, all faces of an image on one side, reproducible by seed; bad split strings."""

from collections import Counter

import pytest

from annotator.errors import ExportError
from annotator.exports.query import FaceRow
from annotator.exports.selection import gender_class
from annotator.exports.splits import assign_splits, parse_split


def synthetic_rows():
    """300 images, 60% male; every third image has two faces."""
    rows = []
    for image in range(300):
        female = 0.9 if image % 5 in (1, 3) else 0.1
        for index in range(2 if image % 3 == 0 else 1):
            rows.append(FaceRow(f"/p/{image}.png", f"{image:064x}", index,
                                values={"male_prob": 1 - female, "female_prob": female}))
    return rows


def splits_of(seed, fractions=None):
    rows = synthetic_rows()
    assign_splits(rows, fractions or {"train": 0.8, "val": 0.1, "test": 0.1}, seed, gender_class)
    return rows


def test_splits_are_stratified_grouped_by_image_and_seeded():
    rows = splits_of(seed=1)
    by_image: dict[str, set[str | None]] = {}
    for row in rows:
        by_image.setdefault(row.sha256, set()).add(row.split)
    assert all(len(splits) == 1 for splits in by_image.values())  # all faces of an image in one split
    images = {sha: (splits.pop(), next(gender_class(r) for r in rows if r.sha256 == sha))
              for sha, splits in by_image.items()}
    per_class = Counter(images.values())
    # 180 male and 120 female images, each class cut 80/10/10 on its own.
    assert per_class == {("train", "male"): 144, ("val", "male"): 18, ("test", "male"): 18,
                         ("train", "female"): 96, ("val", "female"): 12, ("test", "female"): 12}
    assert [r.split for r in splits_of(seed=1)] == [r.split for r in rows]
    assert [r.split for r in splits_of(seed=2)] != [r.split for r in rows]


def test_a_split_is_all_of_its_stratum_when_it_takes_everything():
    assert {r.split for r in splits_of(seed=0, fractions={"all": 1.0})} == {"all"}


@pytest.mark.parametrize(("text", "message"), [
    ("train=0.8,val=0.3", "must sum to 1; they sum to 1.1"),
    ("train:0.8,val:0.2", "Each split is NAME=FRACTION"),
    ("train=0.5,train=0.5", "named twice"),
    ("train=lots", "is not a number"),
    ("train=1.5,val=-0.5", "between 0 and 1"),
    ("../up=1", "Each split is NAME=FRACTION"),
])
def test_bad_split_strings_say_what_is_wrong(text, message):
    with pytest.raises(ExportError, match=message):
        parse_split(text)


def test_split_strings_parse_in_order():
    assert list(parse_split(" train=0.7, val=0.2 ,test=0.1")) == ["train", "val", "test"]


def test_grouped_images_share_a_split_and_ungrouped_ones_land_where_they_did():
    plain = splits_of(seed=3)
    rows = synthetic_rows()
    shas = sorted({row.sha256 for row in rows})
    # Every tenth image is a near-duplicate of the next one; the group's key is its smallest SHA-256.
    group_of = {sha: shas[i - 1] if i % 10 == 1 else sha for i, sha in enumerate(shas)}
    assign_splits(rows, {"train": 0.8, "val": 0.1, "test": 0.1}, 3, gender_class, group_of)
    split_of = {row.sha256: row.split for row in rows}
    assert all(split_of[sha] == split_of[key] for sha, key in group_of.items())
    moved = {row.sha256 for row, before in zip(rows, plain) if row.split != before.split}
    # Singletons keep their rank (their key is their own SHA-256); only the cut points shift a little.
    assert len(moved) <= 30, len(moved)
