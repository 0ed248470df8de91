"""A report of a small real run, opened in headless Chromium (Debian's package) the way a person opens it."""

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from annotator.faces.modes import ALIGNED_FACES
from annotator.images.portraits import write_portrait_folder
from annotator.inspection.report import build_report
from annotator.jobs.pipeline import process_chunk
from annotator.labels.importing import import_labels
from db.session import transaction
from tests.recorded_jobs import create_job

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and os.environ.get("CI") != "true",  # CI installs it (.ci/run): there it must run
    reason="needs Debian's chromium (apt-get install chromium)")


def small_run(factory, settings, folder):
    """Portraits, a re-encoded copy, broken files and a few labels, annotated by the real pipeline."""
    paths = write_portrait_folder(folder, 24, seed=5)
    Image.open(paths[0]).save(folder / "copy_of_first.jpg", quality=70)  # a near-duplicate image
    Image.new("RGB", (120, 120), (4, 4, 4)).save(folder / "black.png")  # very dark
    (folder / "empty.jpg").write_bytes(b"")
    data = paths[1].read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])  # truncated
    with transaction(factory) as session:
        job = create_job(session, folder, chunk_size=8, faces=ALIGNED_FACES)
    for chunk in job.chunks:
        process_chunk(factory, settings, job.job_id, chunk)
    labels = folder.parent / "labels.csv"
    labels.write_text("path,gender,eyes\n" + "".join(f"{p},{'female' if i % 2 else 'male'},{i % 3 / 2}\n"
                                                      for i, p in enumerate(paths[:10])))
    with transaction(factory) as session:
        import_labels(session, labels)
    return job.job_id


@needs_chromium
def test_the_report_loads_in_chromium_with_no_errors_and_no_requests(factory, settings, untrained_chain, tmp_path):
    from playwright.sync_api import sync_playwright

    small_run(factory, settings, tmp_path / "photos")
    report = tmp_path / "report.html"
    build_report(factory, settings, report)
    errors, requests = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto(report.as_uri(), wait_until="load")
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth])")
        headings = page.eval_on_selector_all("h2", "els => els.map(e => e.textContent)")
        failed_reasons = page.inner_text("#run")
        quality = page.inner_text("#quality")
        screenshot = tmp_path / "report.png"
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    assert errors == []
    assert requests == [report.as_uri()]  # the page itself; every chart and face is inline
    assert len(images) > 30 and all(complete and width > 0 for complete, width in images)
    assert headings == ["The run", "Values per attribute", "Faces at the extremes", "Most uncertain faces",
                        "Agreement with labels", "Data quality"]
    assert "truncated" in failed_reasons and "not_an_image" in failed_reasons
    # the re-encoded copy is found with its original (generated portraits share one layout, so other groups of
    # look-alike portraits may be listed too)
    groups = [text for text in quality.split("group ")[1:] if "copy_of_first.jpg" in text]
    assert len(groups) == 1 and "portrait_00000.jpg" in groups[0]
    assert screenshot.stat().st_size > 50_000
    if os.environ.get("ANNOTATE_REPORT_SCREENSHOT"):  # where to keep it, e.g. for the README
        shutil.copy(screenshot, os.environ["ANNOTATE_REPORT_SCREENSHOT"])
