import re

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import func, select

from annotator.cli import main
from annotator.faces.modes import ALIGNED_FACES
from annotator.inspection.report import build_report
from annotator.labels.importing import import_labels
from db.models import FaceQuality
from db.session import transaction
from tests.conftest import fake_chain, record_annotations, write_faces
from tests.recorded_jobs import create_job


@pytest.fixture
def run(factory, tmp_path):
    """Twelve recorded faces with spread values (no model runs), a job of broken files, and three labels."""
    fake_chain(factory)
    paths = write_faces(tmp_path / "photos", 11)
    copy = np.asarray(Image.open(paths[3])).copy()
    copy[0, 0] = 255 - copy[0, 0]  # other bytes, the same picture: a near-duplicate
    paths.append(tmp_path / "photos" / "face_011.png")
    Image.fromarray(copy).save(paths[-1])
    values = [{"gender": i / 11, "eyes": (i * 5 % 12) / 11, "mouth": 0.5, "background_mean": 1 - i / 11}
              for i in range(12)]
    shas = record_annotations(factory, paths, values)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "empty.jpg").write_bytes(b"")
    (broken / "notes.png").write_text("not a picture")
    with transaction(factory) as session:
        job = create_job(session, broken, chunk_size=4, faces=ALIGNED_FACES)
    labels = tmp_path / "checked.csv"
    labels.write_text("sha256,gender,eyes\n"
                      f"{shas['face_000.png']},female,0\n{shas['face_011.png']},female,1\n{shas['face_005.png']},male,\n")
    with transaction(factory) as session:
        import_labels(session, labels)
    return {"shas": shas, "broken_job": job.job_id}


def test_a_report_of_the_database_shows_the_run_values_faces_labels_and_quality(factory, settings, run, tmp_path):
    output = tmp_path / "report.html"
    built = build_report(factory, settings, output, on_progress=lambda done, total: None)
    page = output.read_text()
    assert built.faces == 12 and built.measured == 12 and built.size == output.stat().st_size
    with factory() as session:  # measured once, stored: the next report measures nothing
        assert session.scalar(select(func.count()).select_from(FaceQuality)) == 12
    assert build_report(factory, settings, tmp_path / "again.html").measured == 0
    # the run: failures by reason code with their examples
    assert "not_an_image" in page and "empty.jpg" in page and "notes.png" in page
    # every attribute has its distribution chart and summary; the constant mouth is flagged as collapsed
    assert page.count('alt="distribution of') == 4
    assert re.search(r"<h3>mouth</h3>.*?COLLAPSED", page, re.DOTALL)
    assert not re.search(r"<h3>eyes</h3>((?!<h3>).)*COLLAPSED", page, re.DOTALL)
    # thumbnails are inline JPEGs linked to their files
    assert page.count("data:image/jpeg;base64,") >= 12
    assert (tmp_path / "photos" / "face_011.png").as_uri() in page
    # agreement: face_000 (predicted male 1.00) labelled female, face_011 female/female, face_005 male/male
    assert "3 labelled faces, accuracy 0.667" in page
    assert 'alt="reliability diagram"' in page and "Error per regressor" in page
    assert "Data quality" in page and "blurry" in page
    assert "1 group holding 2 of 12 images" in page
    group = page[page.index("<b>group 1</b>"):]
    assert "face_003.png" in group and "face_011.png" in group
    # self-contained: nothing to fetch (only data: URIs and links to local files)
    assert not re.search(r'(src|href)="(?!data:|file:|#)', page)


def test_a_report_of_one_job_shows_only_that_job(factory, settings, run, tmp_path):
    output = tmp_path / "job.html"
    built = build_report(factory, settings, output, job_id=run["broken_job"])
    page = output.read_text()
    assert built.faces == 0
    assert f"job {run['broken_job']}" in page and "not_an_image" in page and "face_000.png" not in page


def test_report_command_writes_the_file_and_says_where(settings, factory, run, tmp_path):
    output = tmp_path / "out.html"
    result = CliRunner().invoke(main, ["report", "-o", str(output)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"Wrote {output}" in result.output and "12 faces" in result.output
    assert output.stat().st_size > 10_000
    bad = CliRunner().invoke(main, ["report", "--job", "999", "-o", str(output)])
    assert bad.exit_code == 1 and "No job 999" in bad.output and "Traceback" not in bad.output
