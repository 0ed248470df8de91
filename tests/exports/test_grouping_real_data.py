"""On real faces (../shared/data): copies of a photo never straddle an exported split; how people group."""

import csv
import sys
from pathlib import Path

import pytest
from PIL import Image

from annotator.exports.options import ExportOptions
from annotator.exports.run import run_export
from annotator.images.discovery import hash_file
from db.session import transaction
from tests.conftest import SHARED_DATA, fake_chain, record_annotations

pytestmark = [pytest.mark.real_data,
              pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real data not found at {SHARED_DATA}")]
SPLIT = {"train": 0.8, "val": 0.1, "test": 0.1}


def _utkface(count):
    with (SHARED_DATA / "utkface-adults" / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    distinct: dict[str, Path] = {}
    for row in rows[:: len(rows) // count]:  # UTKFace holds a few files twice: keep one of each
        path = SHARED_DATA / "utkface-adults" / row["path"]
        distinct.setdefault(hash_file(path)[0], path)
    return list(distinct.values())[:count]


def _split_of(factory, tmp_path, **options):
    output = tmp_path / "out.csv"
    with transaction(factory) as session:
        result = run_export(session, ExportOptions(split=SPLIT, **options), output, sys.stdout)
    with output.open(newline="") as handle:
        return {row["path"]: row["split"] for row in csv.DictReader(handle)}, result.groups


def test_reencoded_copies_of_real_photos_never_land_on_another_side(factory, tmp_path):
    originals = _utkface(300)
    copies = {}
    for number, original in enumerate(originals):
        picture = Image.open(original).convert("RGB")
        made = [tmp_path / f"{number}_q50.jpg", tmp_path / f"{number}_small.png"]
        picture.save(made[0], quality=50)
        picture.resize((120, 120)).save(made[1])
        copies[original] = made
    fake_chain(factory)
    record_annotations(factory, [*originals, *(p for made in copies.values() for p in made)])
    for seed in range(3):
        split_of, groups = _split_of(factory, tmp_path, seed=seed)
        apart = [o for o, made in copies.items() if len({split_of[str(p)] for p in (o, *made)}) > 1]
        assert apart == []
    # Every original with its two copies is one group; UTKFace also holds a few photos twice.
    assert groups.near_duplicate_images >= 3 * len(originals) and len(set(groups.key_of.values())) <= len(originals)


def test_group_by_person_joins_crops_of_real_faces_and_keeps_most_people_apart(factory, tmp_path):
    pytest.importorskip("dlib")
    originals = _utkface(150)
    crops = {}
    for number, original in enumerate(originals):
        picture = Image.open(original).convert("RGB")
        side = picture.width
        crops[original] = tmp_path / f"{number}_crop8.jpg"  # 8% off every side: too far for the hashes
        picture.crop((side * 8 // 100, side * 8 // 100, side * 92 // 100, side * 92 // 100)).save(crops[original],
                                                                                             quality=80)
    fake_chain(factory)
    record_annotations(factory, [*originals, *crops.values()])
    by_image, _ = _split_of(factory, tmp_path, seed=0)
    by_hash_apart = sum(by_image[str(o)] != by_image[str(c)] for o, c in crops.items())
    split_of, groups = _split_of(factory, tmp_path, seed=0, group_by="person")
    apart = [o for o, c in crops.items() if split_of[str(o)] != split_of[str(c)]]
    sizes = {}
    for key in groups.key_of.values():
        sizes[key] = sizes.get(key, 0) + 1
    print(f"\nperson groups: {groups.person_groups} ({groups.person_faces} faces); crops apart by hashes alone: "
          f"{by_hash_apart}/{len(crops)}, by person: {len(apart)}/{len(crops)}; largest group {max(sizes.values())} images")
    assert by_hash_apart > 10 and apart == []
    assert max(sizes.values()) <= 10  # strangers are not chained into one big group
