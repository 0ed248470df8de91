"""Bulk inserts on a real PostgreSQL: the COPY path must behave exactly like INSERT ... ON CONFLICT DO NOTHING."""

from sqlalchemy import func, select

from db.migrate import upgrade
from db.models import Face, Image, Job, JobImage
from db.queries import COPY_MIN_ROWS, insert_ignoring_conflicts
from db.session import make_engine, make_session_factory, transaction


def test_copy_inserts_skip_conflicts_fill_defaults_and_keep_json(postgres_url):
    engine = make_engine(postgres_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    images = [{"sha256": f"{i:064x}", "path": f"/p/{i}.jpg", "size": i, "format": "JPEG"} for i in range(COPY_MIN_ROWS)]
    with transaction(factory) as session:
        insert_ignoring_conflicts(session, Image, images)
        insert_ignoring_conflicts(session, Image, images + [{"sha256": "f" * 64, "path": "/new.jpg", "size": 1,
                                                              "format": None}])  # all but one conflict
        ids = session.scalars(select(Image.id).order_by(Image.id)).all()
        faces = [{"image_id": image_id, "method": "mtcnn-32-0.90", "index": 0, "box": [1.5, 2.0, 30.0, 41.25],
                  "landmarks": [[1.0, 2.0]] * 5, "score": 0.99} for image_id in ids]
        insert_ignoring_conflicts(session, Face, faces)
        insert_ignoring_conflicts(session, Face, faces)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Image)) == COPY_MIN_ROWS + 1
        assert session.scalar(select(func.count()).select_from(Image).where(Image.created_at.is_(None))) == 0
        stored = session.scalars(select(Face)).all()
        assert len(stored) == len(ids) and {tuple(f.box) for f in stored} == {(1.5, 2.0, 30.0, 41.25)}
        assert stored[0].landmarks == [[1.0, 2.0]] * 5
    engine.dispose()


def test_copy_inserts_are_rolled_back_with_their_transaction(postgres_url):
    engine = make_engine(postgres_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        session.add(Job(source="/p", face_mode="aligned", chain=[], model_version_ids=[], chunk_size=1))
    members = [{"job_id": 1, "image_id": None, "path": f"/p/{i}", "chunk": None, "status": "failed",
                "reason": "unreadable", "detail": "gone"} for i in range(COPY_MIN_ROWS)]
    try:
        with transaction(factory) as session:
            insert_ignoring_conflicts(session, JobImage, members)
            raise RuntimeError("crash after the copy")
    except RuntimeError:
        pass
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(JobImage)) == 0
    with transaction(factory) as session:  # and the staging table is gone: the same copy works again
        insert_ignoring_conflicts(session, JobImage, members)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(JobImage)) == COPY_MIN_ROWS
    engine.dispose()
