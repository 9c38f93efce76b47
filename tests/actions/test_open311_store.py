"""Open311 in the store: the public view, API keys, submissions, hand-overs and updates back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from support.cities import with_backends

from actions.city import BackendConfig, LoadedCity, sync_city
from actions.domain import (
    Audience,
    EventKind,
    OutboxState,
    Privacy,
    SendMethod,
    TicketKind,
    TicketStatus,
)
from actions.models import (
    Agency,
    ApiClient,
    ApiSubmission,
    Area,
    ExternalRequest,
    Outbox,
    Resident,
    Ticket,
    TicketEvent,
)
from actions.open311 import (
    Forwarder,
    ForwardResult,
    Open311Error,
    RemoteUpdate,
    RequestFilter,
    Submission,
    add_client,
    agency_links,
    apply_update,
    client_for_key,
    forwarding_of,
    public_request_by_number,
    public_requests,
    revoke_client,
    submit,
)
from actions.tickets import Action, create_ticket, transition
from nlu import redact
from nlu.entities import find_personal

MONDAY = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)  # as tests/conftest.py's make_ticket
PRIVATE = "rusak parah, hubungi sy 0812-3456-7890, NIK 1471010101900001"


def _ticket(session, city, resident, *, privacy=Privacy.BIASA, category="jalan", **kw):
    area = session.scalar(select(Area).where(Area.name == "Tangkerang Barat"))
    return create_ticket(
        session,
        city=city.config,
        reporter=resident,
        kind=TicketKind.LAPOR,
        category_code=category,
        description=kw.pop("description", PRIVATE),
        location_text="Jl. Paus no. 7, depan rumah sy",
        latitude=0.507134,
        longitude=101.447753,
        area=area,
        privacy=privacy,
        now=kw.pop("now", MONDAY),
    )


def _public(session, city, **filters):
    filt = RequestFilter(**filters)
    now = MONDAY + timedelta(days=1)
    return public_requests(session, city=city.config, filt=filt, now=now, redact=redact)


def test_public_output_never_holds_a_rahasia_ticket_a_phone_number_or_a_nik(
    session, city, resident
):
    shown = _ticket(session, city, resident, privacy=Privacy.BIASA)
    hidden = _ticket(session, city, resident, privacy=Privacy.RAHASIA)
    transition(session, shown, Action.START, actor=None, note="ditelp ke 081234567890", now=MONDAY)
    session.commit()
    # An officer who names the reporter in a reply: the name stays out of the public view.
    named = _ticket(session, city, resident, privacy=Privacy.ANONIM)
    transition(session, named, Action.START, actor=None, note="sudah dicek bu siti", now=MONDAY)
    session.commit()
    (public_named,) = _public(session, city, ids=(named.number,))
    assert public_named["status_notes"] == "sudah dicek bu ***"
    requests = _public(session, city, ids=(shown.number, hidden.number))
    assert [r["service_request_id"] for r in requests] == [shown.number]
    text = json.dumps(requests, ensure_ascii=False)
    assert find_personal(text) == []
    assert "Siti" not in text and "5001" not in text  # no identity, ever
    assert requests[0]["description"].startswith("rusak parah, hubungi sy 0812-****-7890")
    assert requests[0]["status_notes"] == "ditelp ke 0812-****-7890"
    # Asked for by its number, a rahasia ticket is as unknown as one that does not exist.
    with pytest.raises(Open311Error) as refused:
        public_request_by_number(session, number=hidden.number, city=city.config, redact=redact)
    assert refused.value.code == 404
    assert _public(session, city, ids=(hidden.number,)) == []


def test_an_anonim_ticket_has_its_pin_rounded_and_only_its_kelurahan_as_address(
    session, city, resident
):
    ticket = _ticket(session, city, resident, privacy=Privacy.ANONIM)
    session.commit()
    (shown,) = _public(session, city)
    assert (shown["lat"], shown["long"]) == (0.507, 101.448)
    assert shown["address"] == "Tangkerang Barat"
    assert shown["address_id"] == ticket.area.code
    biasa = _ticket(session, city, resident, privacy=Privacy.BIASA)
    session.commit()
    (plain,) = _public(session, city, ids=(biasa.number,))
    assert (plain["lat"], plain["long"]) == (0.507134, 101.447753)
    assert plain["address"] == "Jl. Paus no. 7, depan rumah sy, Tangkerang Barat"


def test_requests_filter_by_status_service_window_and_page(session, city, resident):
    old = _ticket(session, city, resident, now=MONDAY - timedelta(days=120))
    road = _ticket(session, city, resident)
    trash = _ticket(session, city, resident, category="sampah", now=MONDAY + timedelta(hours=1))
    transition(session, trash, Action.RESOLVE, actor=None, note="sudah diangkut", now=MONDAY)
    session.commit()

    def ids(**f):
        return [r["service_request_id"] for r in _public(session, city, **f)]

    assert ids() == [trash.number, road.number]  # the last 90 days, newest first
    assert ids(statuses=("closed",)) == [trash.number]
    assert ids(statuses=("open",)) == [road.number]
    assert ids(service_codes=("jalan",)) == [road.number]
    assert ids(start=MONDAY - timedelta(days=121), end=MONDAY - timedelta(days=100)) == [
        old.number
    ]
    assert ids(page_size=1) == [trash.number] and ids(page_size=1, page=2) == [road.number]
    assert ids(ids=(old.number,)) == [old.number]  # ids override the window
    with pytest.raises(Open311Error, match="90 days"):
        _public(session, city, start=MONDAY - timedelta(days=100), end=MONDAY)
    with pytest.raises(Open311Error, match="neither open nor closed"):
        _public(session, city, statuses=("done",))


def test_an_api_key_is_stored_only_as_a_hash_and_a_revoked_key_is_refused(session):
    key = add_client(session, name="dasbor-kominfo", now=MONDAY)
    session.commit()
    stored = session.scalar(select(ApiClient))
    assert key not in (stored.key_hash, stored.key_prefix) and key.startswith(stored.key_prefix)
    assert client_for_key(session, key).name == "dasbor-kominfo"
    assert client_for_key(session, key + "x") is None and client_for_key(session, "") is None
    revoke_client(session, name="dasbor-kominfo", now=MONDAY)
    assert client_for_key(session, key) is None


def _counts(session) -> tuple[int, ...]:
    return tuple(
        session.scalar(select(func.count()).select_from(m))
        for m in (Ticket, ApiSubmission, Outbox, TicketEvent, Resident)
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"service_code": "jalan_tol"}, "service_code"),
        ({"description": "  "}, "description"),
        ({"lat": 0.5, "long": None}, "lat and long"),
        ({"lat": 95.0, "long": 101.4}, "out of range"),
        ({"address_string": "", "lat": None, "long": None}, "location is required"),
        ({"address_id": "14.71.99.9999"}, "address_id"),
        ({"privacy": "publik"}, "privacy"),
    ],
)
def test_a_refused_submission_writes_nothing_and_takes_no_number(session, city, change, problem):
    add_client(session, name="aplikasi-rt", now=MONDAY)
    session.commit()
    client = session.scalar(select(ApiClient))
    before = _counts(session)
    good = {"service_code": "jalan", "description": "lubang besar", "address_string": "Jl. Paus"}
    with pytest.raises(Open311Error, match=problem) as refused:
        submit(
            session, city=city.config, client=client, sub=Submission(**good | change), now=MONDAY
        )
    assert refused.value.code == 400
    session.rollback()
    assert _counts(session) == before
    made = submit(session, city=city.config, client=client, sub=Submission(**good), now=MONDAY)
    assert made.ticket.number == "PKU-2026-000001"


def test_a_submission_is_a_routed_report_that_queues_no_chat_message_for_the_api_reporter(
    session, city
):
    add_client(session, name="aplikasi-rt", now=MONDAY)
    client = session.scalar(select(ApiClient))
    sub = Submission(
        service_code="jalan",
        description="lubang besar",
        address_id="14.71.01.1002",
        lat=0.51,
        long=101.45,
        account_id="warga-77",
        name="Budi",
        privacy="anonim",
    )
    made = submit(session, city=city.config, client=client, sub=sub, now=MONDAY)
    ticket = made.ticket
    assert (ticket.status, ticket.agency.code, ticket.privacy) == (
        TicketStatus.ROUTED,
        "PUPR",
        Privacy.ANONIM,
    )
    assert ticket.area.code == "14.71.01.1002" and ticket.first_response_due_at is not None
    assert ticket.reporter.channel == "open311" and ticket.reporter.display_name == "Budi"
    transition(session, ticket, Action.RESOLVE, actor=None, note="sudah ditambal", now=MONDAY)
    session.commit()
    residents = session.scalars(
        select(Outbox.template).where(Outbox.audience == Audience.RESIDENT)
    ).all()
    assert residents == []  # the API client reads updates through GET requests


@pytest.fixture
def linked(session, city: LoadedCity) -> LoadedCity:
    """PUPR hands its tickets to its own Open311 server."""
    backend = BackendConfig(
        send_method=SendMethod.OPEN311,
        endpoint="http://127.0.0.1:9/open311/v2",
        api_key_env="WARGA_PUPR_API_KEY",
        service_codes={"jalan": "JLN"},
    )
    linked = with_backends(city, {"PUPR": backend})
    sync_city(session, city=linked)
    session.commit()
    return linked


def test_a_ticket_routed_to_an_agency_with_a_system_is_handed_over_once(session, linked, resident):
    road = _ticket(session, linked, resident)
    _ticket(session, linked, resident, category="sampah")  # DLHK has no system
    session.commit()
    rows = session.scalars(select(Outbox).where(Outbox.audience == Audience.EXTERNAL)).all()
    assert [(r.ticket_id, r.agency_id) for r in rows] == [(road.id, road.agency_id)]
    assert forwarding_of(session, road)[0].state is OutboxState.PENDING


def test_agency_secrets_come_from_the_environment_and_a_missing_one_is_named(linked):
    links = agency_links(linked.config, {"WARGA_PUPR_API_KEY": "k-123"})
    assert list(links) == ["PUPR"] and links["PUPR"].api_key.get_secret_value() == "k-123"
    assert "k-123" not in repr(links)
    with pytest.raises(Exception, match="WARGA_PUPR_API_KEY is not set"):
        agency_links(linked.config, {})


def _sent(session, ticket, sid: str) -> None:
    """As the dispatcher records a hand-over their system accepted."""
    session.add(
        ExternalRequest(ticket_id=ticket.id, agency_id=ticket.agency_id, service_request_id=sid)
    )
    session.commit()


def test_updates_from_the_agency_system_become_events_once_and_reach_the_resident(
    session, linked, resident
):
    ticket = _ticket(session, linked, resident)
    _sent(session, ticket, "R-9")

    def update(status, notes):
        event = apply_update(
            session,
            agency_id=ticket.agency_id,
            update=RemoteUpdate("R-9", status, notes),
            now=MONDAY,
        )
        session.commit()
        return event

    def told() -> list[tuple[str, str]]:
        rows = session.scalars(
            select(Outbox)
            .where(Outbox.audience == Audience.RESIDENT, Outbox.resident_id == resident.id)
            .order_by(Outbox.id)
        )
        return [(r.template, r.params.get("note") or r.params.get("text", "")) for r in rows]

    assert update("open", "") is None  # what we already knew
    started = update("open", "Tim survei besok pagi")
    assert (started.kind, started.to_status) == (EventKind.STATUS_CHANGED, "in_progress")
    assert update("open", "Tim survei besok pagi") is None  # seen before: nothing twice
    reply = update("open", "Sudah disurvei, tunggu aspal")
    assert (reply.kind, reply.actor_id, reply.body) == (
        EventKind.REPLY,
        None,
        "Sudah disurvei, tunggu aspal",
    )
    resolved = update("closed", "Sudah ditambal")
    assert resolved.to_status == TicketStatus.RESOLVED
    assert told() == [
        ("ticket.status.in_progress", "Tim survei besok pagi"),
        ("ticket.reply", "Sudah disurvei, tunggu aspal"),
        ("ticket.status.resolved", "Sudah ditambal"),
        ("ticket.ask_rating", ""),
    ]
    link = session.scalar(select(ExternalRequest))
    assert (link.remote_status, link.remote_notes) == ("closed", "Sudah ditambal")


def test_an_update_for_a_ticket_rerouted_since_moves_nothing(session, linked, resident):
    ticket = _ticket(session, linked, resident)
    _sent(session, ticket, "R-1")
    pupr = ticket.agency_id
    transition(
        session,
        ticket,
        Action.REROUTE,
        actor=None,
        note="rambu lalu lintas",
        agency=session.scalar(select(Agency).where(Agency.code == "DISHUB")),
        now=MONDAY,
    )
    session.commit()
    assert (
        apply_update(session, agency_id=pupr, update=RemoteUpdate("R-1", "closed"), now=MONDAY)
        is None
    )
    assert ticket.status is TicketStatus.ROUTED


def test_a_recorded_hand_over_keeps_their_id_and_says_so_in_the_history(session, linked, resident):
    _ticket(session, linked, resident)
    session.commit()
    row = session.scalar(select(Outbox).where(Outbox.audience == Audience.EXTERNAL))
    links = agency_links(linked.config, {"WARGA_PUPR_API_KEY": "k"})
    forwarder = Forwarder(linked.config, links, http=None)  # type: ignore[arg-type]
    job = forwarder.prepare(session, row)
    assert job.fields["service_code"] == "JLN"  # the city file's mapping
    assert job.fields["first_name"] == "Siti" and job.fields["attribute[privacy]"] == "biasa"
    assert job.fields["address_string"] == "Jl. Paus no. 7, depan rumah sy, Tangkerang Barat"
    forwarder.record(session, job, ForwardResult("R-42"), MONDAY)
    session.commit()
    event = session.scalar(select(TicketEvent).where(TicketEvent.kind == EventKind.FORWARDED))
    assert event.data["service_request_id"] == "R-42"
    # Routed there again later, it is not sent a second time.
    assert forwarder.prepare(session, row).done_before
