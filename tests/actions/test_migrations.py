"""Alembic migrations build exactly the models' schema, and come down again."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from actions import migrate
from actions.db import make_engine
from actions.domain import EventKind
from actions.models import Base, TicketEvent, utcnow


def test_upgrade_builds_the_models_schema_and_downgrade_removes_it(empty_url):
    engine = make_engine(empty_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        have, head = migrate.current(engine)
        assert have == head
        migrate.downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(engine)  # and up again
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_migrated_schema_accepts_every_event_kind_and_refuses_others(session, make_ticket):
    ticket = make_ticket()
    session.commit()
    table = TicketEvent.__table__
    row = {"ticket_id": ticket.id, "body": "", "data": {}, "created_at": utcnow()}
    for kind in EventKind:
        session.execute(insert(table).values(**row, kind=kind.value))
    session.commit()
    stored = set(session.scalars(select(table.c.kind).where(table.c.ticket_id == ticket.id)))
    assert stored == {k.value for k in EventKind}
    with pytest.raises(IntegrityError):  # the CHECK constraint, below the ORM's own check
        session.execute(
            text(
                "INSERT INTO ticket_event (ticket_id, kind, body, data, created_at) "
                "VALUES (:t, 'bogus', '', '{}', :c)"
            ),
            {"t": ticket.id, "c": utcnow()},
        )
        session.commit()
    session.rollback()


def test_0008_adds_the_corrections_table_and_its_checks_and_takes_only_it_away(empty_url):
    engine = make_engine(empty_url)
    try:
        migrate.upgrade(engine, "0007")
        before = set(inspect(engine).get_table_names())
        assert "nlu_correction" not in before
        migrate.upgrade(engine)
        assert "nlu_correction" in inspect(engine).get_table_names()
        row = (
            "INSERT INTO nlu_correction (text, predicted, corrected, source, created_at, review) "
        )
        now = {"c": utcnow()}
        with engine.begin() as conn:
            conn.execute(
                text(
                    row + "VALUES ('x', 'lapor/jalan', 'lapor/sampah', 'fallback', :c, 'pending')"
                ),
                now,
            )
        for source, review in (("bogus", "pending"), ("fallback", "bogus")):
            with pytest.raises(IntegrityError), engine.begin() as conn:
                conn.execute(
                    text(row + f"VALUES ('x', 'a', 'b', '{source}', :c, '{review}')"), now
                )
        migrate.downgrade(engine, "0007")
        assert set(inspect(engine).get_table_names()) == before
    finally:
        engine.dispose()
