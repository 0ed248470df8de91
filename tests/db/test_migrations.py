from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from db.migrate import upgrade
from db.models import Base
from db.session import make_engine


def test_models_and_migrations_agree(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_upgrade_twice_is_harmless(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    upgrade(engine)
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == "0008"


def _insert(connection, table, **values):
    from sqlalchemy import column, insert
    from sqlalchemy import table as lightweight_table

    # The tables as revision 0002 left them, not as db.models describes them now.
    connection.execute(insert(lightweight_table(table, *(column(name) for name in values))).values(**values))


def test_0003_backfills_the_gender_version_each_regressor_row_was_computed_with(tmp_path):
    from alembic import command
    from sqlalchemy import text

    from db.migrate import alembic_config

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine, "0002")
    version = {"path": "p", "sha256": "s", "input_spec": "{}", "metrics": "{}", "is_demo": False, "active": False,
               "created_at": "2026-01-01 00:00:00"}
    with engine.begin() as connection:
        for id_, name, number in [(1, "gender", 1), (2, "gender", 2), (3, "eyes", 1), (4, "eyes", 2)]:
            _insert(connection, "model_versions", id=id_, name=name, version=number, **version)
        _insert(connection, "images", id=1, sha256="a" * 64, path="x.png", size=1, created_at="2026-01-01 00:00:00")
        _insert(connection, "faces", id=1, image_id=1, method="aligned", index=0)
        rows = [(1, "gender", 1, "2026-01-01 10:00:00.000001"), (2, "eyes", 3, "2026-01-01 10:00:00.000002"),
                (3, "gender", 2, "2026-01-02 10:00:00.000001"), (4, "eyes", 4, "2026-01-02 10:00:00.000002")]
        for id_, attribute, model_version_id, created_at in rows:
            _insert(connection, "predictions", id=id_, face_id=1, attribute=attribute, value=0.5,
                    model_version_id=model_version_id, created_at=created_at)
    upgrade(engine)
    with engine.connect() as connection:
        found = dict(connection.execute(text("SELECT id, gender_version_id FROM predictions")).all())
    # eyes@1 was written with gender@1 (before gender@2 existed); eyes@2 with gender@2.
    assert found == {1: 1, 2: 1, 3: 2, 4: 2}

    command.downgrade(alembic_config(engine), "0002")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM predictions")).scalar() == 4


def test_0004_records_model_files_under_the_home_relative_to_it(tmp_path, monkeypatch):
    from alembic import command
    from sqlalchemy import text

    from db.migrate import alembic_config

    home = tmp_path / "home"
    monkeypatch.setenv("ANNOTATE_HOME", str(home))
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine, "0003")
    version = {"sha256": "s", "input_spec": "{}", "metrics": "{}", "is_demo": False, "active": False,
               "created_at": "2026-01-01 00:00:00"}
    paths = {1: str(home / "models" / "gender" / "gender-v1.keras"), 2: "/elsewhere/eyes.keras"}
    with engine.begin() as connection:
        for id_, path in paths.items():
            _insert(connection, "model_versions", id=id_, name=f"m{id_}", version=1, path=path, **version)
    upgrade(engine)
    with engine.connect() as connection:
        found = dict(connection.execute(text("SELECT id, path FROM model_versions")).all())
    assert found == {1: "models/gender/gender-v1.keras", 2: "/elsewhere/eyes.keras"}

    command.downgrade(alembic_config(engine), "0003")
    with engine.connect() as connection:
        assert dict(connection.execute(text("SELECT id, path FROM model_versions")).all()) == paths


def test_0005_leaves_running_chunks_to_the_first_sweep_and_keeps_queued_ones_sent(tmp_path):
    from alembic import command
    from sqlalchemy import text

    from db.migrate import alembic_config

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine, "0004")
    with engine.begin() as connection:
        _insert(connection, "jobs", id=1, source="/p", face_mode="aligned", chain="[]", model_version_ids="[]",
                chunk_size=1, status="running", total=2, chunks=2, created_at="2026-01-01 00:00:00")
        _insert(connection, "job_chunks", id=1, job_id=1, chunk=0, status="running", attempts=1)
        _insert(connection, "job_chunks", id=2, job_id=1, chunk=1, status="queued", attempts=0)
    upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT queue FROM jobs")).scalar() == "annotate"
        rows = dict(connection.execute(text("SELECT status, lease_expires_at IS NOT NULL AND queued_at IS NULL "
                                            "OR queued_at IS NOT NULL AND lease_expires_at IS NULL FROM job_chunks")).all())
    assert rows == {"running": 1, "queued": 1}
    command.downgrade(alembic_config(engine), "0004")
    with engine.connect() as connection:
        assert "queue" not in {row[1] for row in connection.execute(text("PRAGMA table_info(jobs)"))}


def test_0006_adds_a_nullable_phash_to_existing_images_and_drops_it_again(tmp_path):
    from alembic import command
    from sqlalchemy import inspect, text

    from db.migrate import alembic_config

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine, "0005")
    with engine.begin() as connection:
        _insert(connection, "images", id=1, sha256="a" * 64, path="x.png", size=1, created_at="2026-01-01 00:00:00")
        _insert(connection, "faces", id=1, image_id=1, method="aligned", index=0)
    upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT sha256, phash FROM images")).all() == [("a" * 64, None)]
    command.downgrade(alembic_config(engine), "0005")
    assert "phash" not in {column["name"] for column in inspect(engine).get_columns("images")}
    with engine.connect() as connection:  # dropping the column must not rebuild the table and cascade
        assert connection.execute(text("SELECT count(*) FROM faces")).scalar() == 1
