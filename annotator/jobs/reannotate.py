"""Jobs for the images whose faces lack current predictions, reusing the faces already recorded for them.

One job per face method ("aligned", "mtcnn-32-0.90", ...): a job finds faces one way, and the pipeline reuses
the faces recorded for an image by that method, so nothing is detected again and face ids stay the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.faces.modes import FaceOptions
from annotator.images.decoding import ReasonCode
from annotator.images.sources import is_uri
from annotator.jobs.creation import NewJob, add_members, new_job
from annotator.jobs.staleness import ChainVersions, images_needing_predictions
from annotator.models.store import active_chain_versions
from annotator.settings import DEFAULT_QUEUE
from db.models import Image, ImageStatus, JobImage
from db.queries import QUERY_BATCH, batched


def _known_paths(session: Session, image_ids: list[int]) -> dict[int, list[str]]:
    """Every path each image was seen at, the most recently submitted first."""
    paths: dict[int, list[str]] = {}
    for group in batched(image_ids, QUERY_BATCH):
        seen = session.execute(select(JobImage.image_id, JobImage.path)
                               .where(JobImage.image_id.in_(group)).order_by(JobImage.id.desc()))
        for image_id, path in seen:
            paths.setdefault(image_id, []).append(path)
        for image_id, path in session.execute(select(Image.id, Image.path).where(Image.id.in_(group))):
            paths.setdefault(image_id, []).append(path)
    return {image_id: list(dict.fromkeys(found)) for image_id, found in paths.items()}


def _member(job_id: int, image_id: int, paths: list[str], taken: set[str]) -> dict[str, Any]:
    """A pending member at the first existing path of the image no other member uses, else a failed one."""
    free = [path for path in paths if path not in taken]
    # An object is not asked for here (one request each): a worker that finds it gone records it as missing.
    existing = [path for path in free if is_uri(path) or Path(path).is_file()]
    member = {"job_id": job_id, "image_id": image_id, "chunk": None, "status": ImageStatus.PENDING.value,
              "reason": None, "detail": None}
    if existing:
        member["path"] = existing[0]
    else:
        # A path must be unique within a job; a path that now holds another image's bytes is marked.
        member["path"] = free[0] if free else f"{paths[0]} (image {image_id})"
        member["status"], member["reason"] = ImageStatus.FAILED.value, ReasonCode.UNREADABLE.value
        member["detail"] = f"the file is gone (looked at {', '.join(paths)})"
    taken.add(member["path"])
    return member


def create_reannotation_jobs(session: Session, *, chunk_size: int, job_id: int | None = None,
                             queue: str = DEFAULT_QUEUE) -> list[NewJob]:
    """Record one job per face method for the images (of ``job_id``, or all) with stale or missing predictions;
    their chunks go to ``queue``."""
    versions = active_chain_versions(session)
    jobs = []
    for method, image_ids in images_needing_predictions(session, ChainVersions.of(versions), job_id).items():
        source = f"reannotate {method} faces" + (f" of job {job_id}" if job_id is not None else "")
        job = new_job(session, source, FaceOptions.from_method(method), versions, chunk_size=chunk_size,
                      total=len(image_ids), queue=queue)
        paths = _known_paths(session, image_ids)
        taken: set[str] = set()
        # Newest images first: when two share a path, the file most likely holds the newer bytes.
        members = [_member(job.id, image_id, paths[image_id], taken) for image_id in sorted(image_ids, reverse=True)]
        jobs.append(add_members(session, job, members))
    return jobs
