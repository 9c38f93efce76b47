"""Processed update ids: a redelivery is dropped; old records are forgotten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from actions.inbox import forget_updates, record_update


def test_an_update_is_recorded_once_per_channel(session):
    assert record_update(session, channel="telegram", update_id="42")
    assert not record_update(session, channel="telegram", update_id="42")
    assert record_update(session, channel="whatsapp", update_id="42")


def test_a_rolled_back_update_can_be_handled_again(session):
    assert record_update(session, channel="telegram", update_id="7")
    session.rollback()
    assert record_update(session, channel="telegram", update_id="7")


def test_records_older_than_the_window_are_forgotten(session):
    with time_machine.travel(datetime(2026, 11, 1, tzinfo=UTC), tick=False):
        record_update(session, channel="telegram", update_id="old")
    record_update(session, channel="telegram", update_id="new")
    session.commit()
    assert forget_updates(session, older_than=timedelta(hours=48)) == 1
    assert record_update(session, channel="telegram", update_id="old")
    assert not record_update(session, channel="telegram", update_id="new")
