"""The ticket lifecycle: every legal and every illegal transition, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from actions.domain import (
    Audience,
    DomainError,
    EventKind,
    IllegalTransition,
    MissingReason,
    TicketStatus,
)
from actions.models import Agency, Outbox, Resident, Ticket, TicketEvent
from actions.people import get_or_create_resident
from actions.tickets import TRANSITIONS, Action, follow_ticket, transition

S = TicketStatus
# A path of legal actions that brings a fresh (routed) ticket to each status.
PATH_TO = {
    S.ROUTED: [],
    S.IN_PROGRESS: [Action.START],
    S.RESOLVED: [Action.RESOLVE],
    S.CLOSED: [Action.RESOLVE, Action.CLOSE],
    S.REJECTED: [Action.REJECT],
    S.REOPENED: [Action.RESOLVE, Action.REOPEN],
}
LEGAL = [(a, s) for a, (froms, _) in TRANSITIONS.items() for s in froms if s is not S.NEW]
ILLEGAL = [(a, s) for a in Action for s in PATH_TO if s not in TRANSITIONS[a][0]]


def _officer(session: Session) -> Resident:
    return get_or_create_resident(session, channel="telegram", platform_user_id="9001")


def _bring_to(session: Session, ticket: Ticket, status: TicketStatus) -> None:
    for action in PATH_TO[status]:
        actor = ticket.reporter if action is Action.REOPEN else _officer(session)
        transition(session, ticket, action, actor=actor, note="alasan")
    assert ticket.status is status


def _args(session: Session, ticket: Ticket, action: Action) -> dict:
    args: dict = {"actor": ticket.reporter if action is Action.REOPEN else _officer(session)}
    if action in (Action.REJECT, Action.REROUTE):
        args["note"] = "bukan kewenangan kami"
    if action in (Action.ROUTE, Action.REROUTE):
        args["agency"] = session.scalar(select(Agency).where(Agency.code == "DISHUB"))
    return args


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_a_new_ticket_is_routed_to_its_agency_with_its_history(session, make_ticket):
    ticket = make_ticket("jalan")
    session.commit()
    assert ticket.status is S.ROUTED
    assert ticket.agency.code == "PUPR"
    kinds = [(e.kind, e.from_status, e.to_status) for e in ticket.events]
    assert kinds == [(EventKind.CREATED, None, S.NEW), (EventKind.STATUS_CHANGED, S.NEW, S.ROUTED)]
    (out,) = session.scalars(select(Outbox)).all()
    assert (out.audience, out.agency_id, out.template) == (
        Audience.AGENCY,
        ticket.agency_id,
        "agency.ticket_routed",
    )


@pytest.mark.parametrize(("action", "start"), LEGAL, ids=[f"{a}-from-{s}" for a, s in LEGAL])
def test_every_legal_transition_records_an_event_and_tells_the_residents(
    session, make_ticket, action, start
):
    ticket = make_ticket()
    follower = get_or_create_resident(session, channel="telegram", platform_user_id="5002")
    follow_ticket(session, ticket=ticket, resident=follower)
    _bring_to(session, ticket, start)
    session.commit()
    events, last = _count(session, TicketEvent), session.scalar(select(func.max(Outbox.id)))
    args = _args(session, ticket, action)

    event = transition(session, ticket, action, **args)
    session.commit()

    assert ticket.status is TRANSITIONS[action][1]
    assert (event.from_status, event.to_status) == (start, ticket.status)
    assert event.actor_id == args["actor"].id
    assert _count(session, TicketEvent) == events + 1
    told = session.scalars(
        select(Outbox).where(
            Outbox.audience == Audience.RESIDENT,
            Outbox.template == f"ticket.status.{ticket.status.value}",
            Outbox.id > last,
        )
    ).all()
    # The reporter and the follower hear it, except whoever did it (the reporter reopening).
    expected = {ticket.reporter_id, follower.id} - {args["actor"].id}
    assert {row.resident_id for row in told} == expected
    assert all(row.params["number"] == ticket.number for row in told)


@pytest.mark.parametrize(("action", "start"), ILLEGAL, ids=[f"{a}-from-{s}" for a, s in ILLEGAL])
def test_every_illegal_transition_is_refused_and_changes_nothing(
    session, make_ticket, action, start
):
    ticket = make_ticket()
    _bring_to(session, ticket, start)
    session.commit()
    events, outbox = _count(session, TicketEvent), _count(session, Outbox)

    with pytest.raises(IllegalTransition) as err:
        transition(session, ticket, action, **_args(session, ticket, action))

    assert ticket.number in str(err.value) and start.value in str(err.value)
    session.commit()
    session.refresh(ticket)
    assert ticket.status is start
    assert (_count(session, TicketEvent), _count(session, Outbox)) == (events, outbox)


def test_a_rejection_needs_a_reason(session, make_ticket):
    ticket = make_ticket()
    with pytest.raises(MissingReason):
        transition(session, ticket, Action.REJECT, actor=_officer(session), note="  ")
    assert ticket.status is S.ROUTED


def test_only_the_reporter_can_reopen(session, make_ticket):
    ticket = make_ticket()
    transition(session, ticket, Action.RESOLVE, actor=_officer(session), note="sudah ditambal")
    with pytest.raises(DomainError, match="only the reporter"):
        transition(session, ticket, Action.REOPEN, actor=_officer(session))
    transition(session, ticket, Action.REOPEN, actor=ticket.reporter, note="masih berlubang")
    assert ticket.status is S.REOPENED and ticket.resolved_at is None


def test_reroute_moves_the_ticket_and_tells_the_new_agency(session, make_ticket):
    ticket = make_ticket("jalan")
    transition(session, ticket, Action.START, actor=_officer(session))
    dishub = session.scalar(select(Agency).where(Agency.code == "DISHUB"))
    event = transition(
        session,
        ticket,
        Action.REROUTE,
        actor=_officer(session),
        agency=dishub,
        note="rambu lalu lintas, bukan jalan",
    )
    session.commit()
    assert ticket.agency.code == "DISHUB" and ticket.status is S.ROUTED
    assert event.kind is EventKind.REROUTED
    assert event.data == {"action": "reroute", "agency": "DISHUB", "from_agency": "PUPR"}
    told = session.scalars(
        select(Outbox).where(Outbox.audience == Audience.AGENCY, Outbox.agency_id == dishub.id)
    ).all()
    assert len(told) == 1


def test_first_response_is_stamped_once(session, make_ticket):
    ticket = make_ticket()
    transition(session, ticket, Action.START, actor=_officer(session))
    first = ticket.first_response_at
    transition(session, ticket, Action.RESOLVE, actor=_officer(session))
    assert first is not None and ticket.first_response_at == first


def test_change_and_outbox_roll_back_together(session, make_ticket):
    ticket = make_ticket()
    session.commit()
    events, outbox = _count(session, TicketEvent), _count(session, Outbox)

    transition(session, ticket, Action.START, actor=_officer(session))
    # Something later in the same transaction fails: the ticket number is already taken.
    session.add(
        Ticket(
            **{
                c: getattr(ticket, c)
                for c in ("number", "kind", "category_id", "reporter_id", "description")
            }
        )
    )
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()

    session.refresh(ticket)
    assert ticket.status is S.ROUTED
    assert (_count(session, TicketEvent), _count(session, Outbox)) == (events, outbox)


def test_change_and_outbox_commit_together(session, make_ticket):
    ticket = make_ticket()
    session.commit()
    transition(session, ticket, Action.START, actor=_officer(session))
    session.commit()
    session.expunge_all()
    stored = session.scalar(select(Ticket).where(Ticket.number == ticket.number))
    assert stored.status is S.IN_PROGRESS
    assert (
        session.scalar(
            select(func.count())
            .select_from(Outbox)
            .where(Outbox.ticket_id == stored.id, Outbox.template == "ticket.status.in_progress")
        )
        == 1
    )


def test_history_is_append_only(session, make_ticket):
    ticket = make_ticket()
    session.commit()
    event = ticket.events[0]
    event.body = "rewritten"
    with pytest.raises(DomainError, match="append-only"):
        session.flush()
    session.rollback()
    with pytest.raises(DomainError, match="append-only"):
        session.delete(session.get(TicketEvent, event.id))
        session.flush()


def test_two_sessions_changing_one_ticket_cannot_both_win(loaded, session, make_ticket):
    from actions.db import make_session_factory
    from actions.domain import ConcurrentChange

    ticket = make_ticket()
    session.commit()
    factory = make_session_factory(loaded)
    with factory() as a, factory() as b:
        stale = b.get(Ticket, ticket.id)  # b read it first ...
        b.commit()
        fresh = a.get(Ticket, ticket.id)  # ... a changed it meanwhile
        transition(a, fresh, Action.START, actor=a.get(Resident, ticket.reporter_id))
        a.commit()
        with pytest.raises(ConcurrentChange, match=ticket.number):
            transition(
                b, stale, Action.REJECT, actor=b.get(Resident, ticket.reporter_id), note="duplikat"
            )
        b.rollback()
    session.refresh(ticket)
    assert ticket.status is S.IN_PROGRESS


def test_resolving_asks_the_reporter_for_a_rating_with_stars_and_not_fixed(session, make_ticket):
    ticket = make_ticket()
    transition(session, ticket, Action.RESOLVE, actor=_officer(session), note="sudah ditambal")
    session.commit()
    (ask,) = session.scalars(select(Outbox).where(Outbox.template == "ticket.ask_rating"))
    assert ask.resident_id == ticket.reporter_id
    stars, not_fixed = ask.params["buttons"]
    assert [payload for _, payload in stars] == [f"rate:{ticket.number}:{n}" for n in range(1, 6)]
    assert not_fixed == [["button.not_fixed", f"reopen:{ticket.number}"]]
