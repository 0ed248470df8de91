"""As a new user would: real photos with broken files and labels, submitted, then `annotate report`."""

import csv
import re
import shutil

import pytest
from click.testing import CliRunner
from PIL import Image

from annotator.cli import main
from tests.conftest import SHARED_DATA

UTKFACE = SHARED_DATA / "utkface-adults"
pytestmark = [pytest.mark.real_data,
              pytest.mark.skipif(not UTKFACE.is_dir(), reason=f"real data not found at {UTKFACE}")]


def invoke(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_report_of_real_photos_shows_failures_values_faces_and_duplicates(settings, untrained_chain, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rows = list(csv.DictReader((UTKFACE / "manifest.csv").open()))[::50][:60]
    for row in rows:
        shutil.copy(UTKFACE / row["path"], photos / f"{row['label']}_{row['path'].rsplit('/', 1)[-1]}")
    first = min(photos.iterdir())
    Image.open(first).save(photos / "copy.jpg", quality=60)  # re-encoded: a near-duplicate
    (photos / "empty.jpg").write_bytes(b"")
    Image.new("RGB", (200, 200), (128, 128, 128)).save(photos / "grey.png")  # no face in it
    labels = tmp_path / "labels.csv"
    labels.write_text("path,gender\n" + "".join(f"{path},{path.name.split('_')[0]}\n"
                                                for path in sorted(photos.glob("*male_*"))[:20]))
    invoke("submit", str(photos), "--wait")
    assert "imported 20 labels" in invoke("labels", "import", str(labels))
    report = tmp_path / "report.html"
    assert "faces" in invoke("report", "-o", str(report))
    page = report.read_text()
    assert "not_an_image" in page and "no_face" in page and "grey.png" in page
    assert page.count('alt="distribution of') == 4 and "Faces at the extremes" in page
    assert re.search(r"gender: 20 labelled faces, accuracy", page)
    group = page[page.index("<b>group 1</b>"):].split('<div class="group">')[0]
    assert set(re.findall(r'<figcaption><a href="[^"]*">([^<]*)</a>', group)) == {"copy.jpg", first.name}
    assert report.stat().st_size < 3_000_000
