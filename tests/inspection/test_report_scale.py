"""The report of 100,000 faces builds in seconds and stays a few MB (rows inserted in bulk, no model runs)."""

import time

import numpy as np
from sqlalchemy import insert

from annotator.images.discovery import hash_file
from annotator.images.portraits import write_portrait_folder
from annotator.inspection.report import build_report
from db.models import Face, FaceQuality, Image, ImageStatus, Job, JobImage, Label, Prediction
from db.session import transaction
from tests.conftest import fake_chain

FACES = 100_000
MAX_SECONDS = 60.0  # measured 12-27 s on a shared 2-core machine (half of it grouping perceptual hashes)
MAX_BYTES = 3_000_000


def _bulk_run(factory, tmp_path):
    versions = fake_chain(factory)
    rng = np.random.default_rng(0)
    files = write_portrait_folder(tmp_path / "photos", 40)  # a few real files, so some thumbnails are pictures
    real = [(str(path), *hash_file(path)[:2]) for path in files]
    hashes = [f"{value:064x}" for value in (int.from_bytes(rng.bytes(32), "big") for _ in range(FACES))]
    for i in range(0, FACES, 1000):  # 100 pairs of near-duplicates: 3 bits apart
        hashes[i + 1] = f"{int(hashes[i], 16) ^ 0b1011:064x}"
    images = [{"id": i + 1, "sha256": real[i][1] if i < len(real) else f"{i:064x}", "phash": hashes[i],
               "path": real[i][0] if i < len(real) else f"/gone/photo_{i:06d}.jpg",
               "size": 1000, "format": "JPEG"} for i in range(FACES)]
    faces = [{"id": i + 1, "image_id": i + 1, "method": "aligned", "index": 0} for i in range(FACES)]
    values = {"gender": rng.random(FACES), "eyes": rng.beta(2, 2, FACES), "mouth": rng.beta(1, 3, FACES),
              "background_mean": rng.random(FACES)}
    predictions = [{"face_id": i + 1, "attribute": name, "value": float(1 - v[i] if name == "gender" else v[i]),
                    "extra": {"male_prob": float(1 - v[i]), "female_prob": float(v[i])} if name == "gender" else None,
                    "model_version_id": versions[name], "gender_version_id": versions["gender"]}
                   for name, v in values.items() for i in range(FACES)]
    brightness, sharpness = rng.uniform(0.1, 0.9, FACES), rng.lognormal(4.5, 1, FACES)
    quality = [{"face_id": i + 1, "brightness": float(brightness[i]), "sharpness": float(sharpness[i]),
                "dark": bool(brightness[i] < 0.2), "bright": bool(brightness[i] > 0.85),
                "blurry": bool(sharpness[i] < 15), "low_score": False} for i in range(FACES)]
    labels = [{"face_id": int(i) + 1, "attribute": name, "value": float(round(values[name][i])), "source": "bulk"}
              for name in ("gender", "eyes") for i in rng.choice(FACES, 1000, replace=False)]
    with transaction(factory) as session:
        job = Job(source=str(tmp_path), face_mode="aligned", chain=list(versions),
                  model_version_ids=list(versions.values()), chunk_size=256, total=FACES + 500, status="finished")
        session.add(job)
        session.flush()
        members = [{"job_id": job.id, "image_id": i + 1, "path": images[i]["path"], "status": ImageStatus.DONE.value}
                   for i in range(FACES)]
        members += [{"job_id": job.id, "image_id": None, "path": f"/broken/{i}.jpg", "status": "failed",
                     "reason": "truncated" if i % 2 else "not_an_image", "detail": "the file ends early"}
                    for i in range(500)]
        for model, rows in [(Image, images), (Face, faces), (Prediction, predictions), (FaceQuality, quality),
                            (Label, labels), (JobImage, members)]:
            session.execute(insert(model), rows)
    return job.id


def test_a_report_of_100000_faces_builds_in_seconds_and_stays_small(factory, settings, tmp_path):
    job_id = _bulk_run(factory, tmp_path)
    for scope in (None, job_id):
        output = tmp_path / f"report-{scope}.html"
        started = time.perf_counter()
        built = build_report(factory, settings, output, job_id=scope)
        seconds = time.perf_counter() - started
        print(f"report of {built.faces:,} faces ({'all' if scope is None else 'job'}): {seconds:.1f} s, "
              f"{built.size / 1e6:.2f} MB, {built.thumbnails} thumbnails")
        assert built.faces == FACES and built.measured == 0
        assert seconds < MAX_SECONDS and built.size < MAX_BYTES
        page = output.read_text()
        assert "truncated" in page and "1,000 labelled faces" in page and "100 groups holding 200" in page
