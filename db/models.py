"""Declarative SQLAlchemy 2 models of jobs, images, faces, predictions, labels and model versions."""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, MetaData, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware current time (stored as UTC)."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Base of every model; constraint names follow :data:`NAMING_CONVENTION`."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}  # noqa: RUF012 - SQLAlchemy API


class JobStatus(str, enum.Enum):
    """Life cycle of a job."""

    RECORDING = "recording"  # submit is still adding its images; chunks already recorded may run
    INTERRUPTED = "interrupted"  # submit died while recording; the same submit again resumes it
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"


class ChunkStatus(str, enum.Enum):
    """Life cycle of one task's worth of images."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


class ImageStatus(str, enum.Enum):
    """Per-image outcome inside a job."""

    PENDING = "pending"
    DONE = "done"
    SKIPPED = "skipped"  # already annotated by the same model versions
    FAILED = "failed"


class Job(Base):
    """One submitted folder."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(4096))
    face_mode: Mapped[str] = mapped_column(String(16))  # "detect" or "aligned"
    face_options: Mapped[dict[str, Any] | None]  # the detector and its settings; None for aligned portraits
    chain: Mapped[list[str]] = mapped_column(JSON)
    model_version_ids: Mapped[list[int]] = mapped_column(JSON)
    chunk_size: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.RUNNING.value)
    total: Mapped[int] = mapped_column(default=0)
    chunks: Mapped[int] = mapped_column(default=0)
    queue: Mapped[str] = mapped_column(String(64), default="annotate", server_default="annotate")
    # While recording: renewed by the submit with every chunk it records; expired means the submit died.
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    members: Mapped[list[JobImage]] = relationship(back_populates="job", cascade="all, delete-orphan")


class JobChunk(Base):
    """One task's worth of a job's images: who holds it under which lease, when it was sent, how often taken."""

    __tablename__ = "job_chunks"
    __table_args__ = (UniqueConstraint("job_id", "chunk"), Index("ix_job_chunks_status", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    chunk: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default=ChunkStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(default=0)
    worker: Mapped[str | None] = mapped_column(String(256))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    queued_at: Mapped[datetime | None]  # when its task was last sent
    lease_owner: Mapped[str | None] = mapped_column(String(64))  # the delivery (task id) holding it
    lease_expires_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]


class Image(Base):
    """Distinct image content, keyed by SHA-256; the same bytes are stored once."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(String(4096))
    size: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str | None] = mapped_column(String(16))
    # 256-bit perceptual hash (64 hex digits) of the decoded picture: near-duplicates share a split. Filled when
    # the image is first decoded; None until then (annotator.images.perceptual.stored_phashes fills it later).
    phash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    faces: Mapped[list[Face]] = relationship(back_populates="image")


class JobImage(Base):
    """An image's membership in a job: its chunk, status and failure reason."""

    __tablename__ = "job_images"
    __table_args__ = (
        UniqueConstraint("job_id", "path"),
        Index("ix_job_images_job_id_chunk", "job_id", "chunk"),
        Index("ix_job_images_job_id_status", "job_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id"))
    path: Mapped[str] = mapped_column(String(4096))
    chunk: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16), default=ImageStatus.PENDING.value)
    reason: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(1024))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    job: Mapped[Job] = relationship(back_populates="members")
    image: Mapped[Image | None] = relationship()


class Face(Base):
    """A face of an image; an aligned portrait has one face, index 0, covering the whole image."""

    __tablename__ = "faces"
    __table_args__ = (UniqueConstraint("image_id", "method", "index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(16))  # "aligned" or a detector's name
    index: Mapped[int]
    box: Mapped[list[float] | None] = mapped_column(JSON)  # [left, top, right, bottom] in source pixels
    landmarks: Mapped[list[list[float]] | None] = mapped_column(JSON)
    score: Mapped[float | None]

    image: Mapped[Image] = relationship(back_populates="faces")


class ModelVersion(Base):
    """One stored model file of a registered spec."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int]
    path: Mapped[str] = mapped_column(String(4096))
    sha256: Mapped[str] = mapped_column(String(64))
    input_spec: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    is_demo: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def label(self) -> str:
        """``name@version``, how versions are named to users and in exports."""
        return f"{self.name}@{self.version}"


class Prediction(Base):
    """One model output for one face, unique per (face, attribute, model version, gender version).

    ``gender_version_id`` is the gender model whose probabilities the value was computed with (a gender
    prediction names its own version): a regressor's output depends on it, so a new gender version needs new
    regressor rows, and whether a prediction is current is derivable from the active versions alone.
    """

    __tablename__ = "predictions"
    __table_args__ = (
        # Named explicitly: the convention's name would exceed PostgreSQL's 63-character identifiers.
        UniqueConstraint("face_id", "attribute", "model_version_id", "gender_version_id",
                         name="uq_predictions_face_attribute_versions"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"))
    attribute: Mapped[str] = mapped_column(String(64))
    value: Mapped[float]
    extra: Mapped[dict[str, Any] | None]
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    gender_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Label(Base):
    """A human or imported correction; labels win over predictions on export."""

    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("face_id", "attribute", "source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"))
    attribute: Mapped[str] = mapped_column(String(64))
    value: Mapped[float]
    source: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FaceQuality(Base):
    """Data-quality measures of one face and the flags they raise (``annotator.faces.quality``), computed once.

    Null measures mean the face's file could no longer be read when it was measured.
    """

    __tablename__ = "face_quality"

    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True)
    brightness: Mapped[float | None]  # mean grey level of the face's middle, 0..1
    sharpness: Mapped[float | None]  # variance of the Laplacian of the grey levels (0..255)
    dark: Mapped[bool]
    bright: Mapped[bool]
    blurry: Mapped[bool]
    low_score: Mapped[bool]  # detector score below the threshold; never for aligned portraits


class TeacherValue(Base):
    """A value an offline teacher model (``annotate teach``) gave a face: its own source, never a label.

    Gender is stored as the female probability (as labels store it), with both probabilities in ``extra``; the
    regressors' raw measure (eye or mouth aspect ratio, background and hair luma) is in ``extra`` too.
    """

    __tablename__ = "teacher_values"
    __table_args__ = (UniqueConstraint("face_id", "attribute", "teacher"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"))
    attribute: Mapped[str] = mapped_column(String(64))
    value: Mapped[float]
    teacher: Mapped[str] = mapped_column(String(64))
    extra: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
