"""`db.session.transaction`: a Ctrl-C is never hidden by the rollback it causes."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from db.session import make_engine, make_session_factory, transaction


def test_a_ctrl_c_whose_rollback_fails_is_raised_as_a_ctrl_c(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'interrupted.db'}")
    factory = make_session_factory(engine)

    @event.listens_for(engine, "rollback")
    def rollback_fails(connection) -> None:  # type: ignore[no-untyped-def]  # as on a connection left mid-query
        raise OperationalError("ROLLBACK", {}, Exception("connection in transaction status ACTIVE"))

    with pytest.raises(KeyboardInterrupt) as raised, transaction(factory) as session:
        session.connection()
        raise KeyboardInterrupt
    assert isinstance(raised.value.__cause__, OperationalError)

    with pytest.raises(OperationalError), transaction(factory) as session:  # any other error's rollback: as it is
        session.connection()
        raise ValueError("not an interrupt")
