"""Open311 over HTTP: our API read by the `georeport` client, POSTs, and two instances of the app,
one the city's backend, the other handing tickets to it and bringing its updates back."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from click.testing import CliRunner
from georeport import GeoReport
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from support.cities import with_backends
from support.servers import serving, wait_for

from actions import desk, migrate
from actions.city import BackendConfig, LoadedCity, sync_city
from actions.db import make_engine, make_session_factory
from actions.domain import Audience, EventKind, OfficerRole, OutboxState, Privacy, TicketKind
from actions.models import (
    ApiClient,
    ApiSubmission,
    ExternalRequest,
    Outbox,
    Resident,
    Ticket,
    TicketEvent,
)
from actions.open311 import SIGNATURE_HEADER, add_client, agency_links, client_for_key
from actions.people import add_officer, get_or_create_resident
from actions.tickets import Action, create_ticket, transition
from bot.cli import cli
from bot.conversation import Assistant
from bot.messages import Incoming
from bot.open311 import Open311Context, backends
from bot.web import create_app
from nlu.entities import find_personal

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)  # the `clock` fixture's Monday
V2 = "/open311/v2"
KEY_ENV = "WARGA_PUPR_API_KEY"
PRIVATE = "lubang dalam, hubungi 0812-3456-7890 NIK 1471010101900001"


def _sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


def _report(sessions, city: LoadedCity, *, privacy=Privacy.BIASA, category="jalan", ago=1):
    with sessions.begin() as s:
        siti = get_or_create_resident(
            s, channel="telegram", platform_user_id="5001", display_name="Siti"
        )
        ticket = create_ticket(
            s,
            city=city.config,
            reporter=siti,
            kind=TicketKind.LAPOR,
            category_code=category,
            description=PRIVATE,
            location_text="Jl. Paus depan SD 12",
            latitude=0.507134,
            longitude=101.447753,
            privacy=privacy,
            now=NOW - timedelta(days=ago),
        )
        return ticket.number


def _counts(sessions) -> tuple[int, ...]:
    with sessions() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(m))
            for m in (Ticket, ApiSubmission, Outbox, TicketEvent, Resident)
        )


# ---------------------------------------------------------------- our API, read and written


def test_the_georeport_client_reads_services_one_service_requests_and_one_request(
    loaded, city, responses
):
    sessions = _sessions(loaded)
    road = _report(sessions, city, ago=3)
    trash = _report(sessions, city, category="sampah", privacy=Privacy.ANONIM, ago=2)
    secret = _report(sessions, city, privacy=Privacy.RAHASIA, ago=1)
    with sessions.begin() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == trash))
        transition(s, ticket, Action.RESOLVE, actor=None, note="sudah diangkut", now=NOW)
    ctx = Open311Context(sessions, city, responses, clock=lambda: NOW)
    with serving(create_app(None, open311=ctx, open311_interval=None)) as url:
        client = GeoReport(url + V2, jurisdiction="pekanbaru.go.id")
        services = client.get_service_list()
        assert [s["service_code"] for s in services] == sorted(city.config.categories)
        assert services[0]["metadata"] is True and services[0]["type"] == "realtime"
        definition = client.get_service_definition("jalan")
        (privacy,) = definition["attributes"]
        assert [v["key"] for v in privacy["values"]] == ["biasa", "anonim", "rahasia"]

        def numbers(**filters) -> list[str]:
            return [r["service_request_id"] for r in client.get_service_requests(**filters)]

        assert numbers() == [trash, road]  # newest first; the rahasia one never
        assert numbers(status="closed") == [trash]
        assert numbers(status="open,closed", service_code="jalan") == [road]
        start, end = (NOW - timedelta(days=2, hours=1)).isoformat(), NOW.isoformat()
        assert numbers(start_date=start, end_date=end) == [trash]
        assert numbers(service_request_id=f"{road},{secret}") == [road]
        one = client.get_service_request(trash)
        assert one["status"] == "closed" and one["status_notes"] == "sudah diangkut"
        assert one["agency_responsible"].startswith("Dinas Lingkungan Hidup")
        assert (one["lat"], one["long"]) == (0.507, 101.448)  # anonim: rounded
        assert one["requested_datetime"] == "2026-11-28T10:00:00+07:00"

        xml = GeoReport(url + V2, jurisdiction="pekanbaru.go.id", output_format="xml")
        assert len(xml.get_service_list()) == len(services)
        assert xml.get_service_request(road)["description"] == one["description"]
        assert {r["service_request_id"] for r in xml.get_service_requests()} == {road, trash}

        with httpx.Client(base_url=url) as http:
            everything = [
                http.get(f"{V2}/requests.{f}").text + http.get(f"{V2}/requests/{road}.{f}").text
                for f in ("json", "xml")
            ]
            missing = http.get(f"{V2}/requests/{secret}.json")
        assert missing.status_code == 404
        assert missing.json() == [{"code": 404, "description": f"no service request {secret!r}"}]
    for body in everything:
        assert secret not in body and "Siti" not in body
        assert find_personal(body) == [], body


def test_post_creates_a_routed_ticket_and_refuses_bad_input_in_the_specs_error_shape(
    loaded, city, responses
):
    sessions = _sessions(loaded)
    with sessions.begin() as s:
        key = add_client(s, name="aplikasi-rt", now=NOW)
    ctx = Open311Context(sessions, city, responses, clock=lambda: NOW)
    form = {
        "api_key": key,
        "service_code": "jalan",
        "description": PRIVATE,
        "lat": "0.51",
        "long": "101.45",
        "first_name": "Budi",
        "attribute[privacy]": "anonim",
    }
    with serving(create_app(None, open311=ctx, open311_interval=None)) as url:
        with httpx.Client(base_url=url + V2) as http:
            before = _counts(sessions)
            refused = [
                http.post("/requests.json", data=form | {"api_key": "sw_tebakan"}),
                http.post("/requests.json", data=form | {"api_key": ""}),
                http.post("/requests.json", data=form | {"lat": "nol koma lima"}),
                http.post("/requests.json", data=form | {"service_code": "jalan_tol"}),
                http.post("/requests.json", data=form | {"jurisdiction_id": "jakarta.go.id"}),
                http.post("/requests.json", data=form | {"attribute[privacy]": "publik"}),
            ]
            assert [r.status_code for r in refused] == [403, 403, 400, 400, 404, 400]
            for r in refused:
                (error,) = r.json()
                assert set(error) == {"code", "description"}
                assert error["code"] == r.status_code
            assert "lat" in refused[2].json()[0]["description"]
            xml = http.post("/requests.xml", data=form | {"api_key": ""})
            assert xml.status_code == 403 and xml.headers["content-type"].startswith("text/xml")
            assert "<errors><error><code>403</code>" in xml.text
            assert _counts(sessions) == before  # nothing half-written

            made = http.post("/requests.json", data=form)
            assert made.status_code == 201, made.text
            (answer,) = made.json()
            number = answer["service_request_id"]
            assert number == "PKU-2026-000001"  # no refused request took a number
            assert "Dinas PUPR" in answer["service_notice"]
            token = http.get(f"/tokens/{answer['token']}.json").json()
            assert token == [{"service_request_id": number, "token": answer["token"]}]
            assert http.get("/tokens/tidak-ada.json").status_code == 404
            (shown,) = http.get(f"/requests/{number}.json").json()
            assert shown["status"] == "open" and "0812-****-7890" in shown["description"]
            assert "Budi" not in json.dumps(shown)
    with sessions() as s:
        ticket = s.scalar(select(Ticket))
        assert (ticket.agency.code, ticket.privacy, ticket.description) == (
            "PUPR",
            Privacy.ANONIM,
            PRIVATE,
        )


def test_the_api_is_documented_at_docs(loaded, city, responses):
    ctx = Open311Context(_sessions(loaded), city, responses)
    with serving(create_app(None, open311=ctx, open311_interval=None)) as url:
        docs = httpx.get(url + "/docs")
        spec = httpx.get(url + "/openapi.json").json()
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = {f"{V2}/services.{{fmt}}", f"{V2}/requests.{{fmt}}", "/open311/updates/{agency}"}
    assert paths <= set(spec["paths"])


# ---------------------------------------------------------------- two instances


def _instance(tmp_path: Path, name: str, city: LoadedCity) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / name}.sqlite3")
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        sync_city(s, city=city)
    return sessions


def _linked(city: LoadedCity, endpoint: str, **backend: object) -> LoadedCity:
    """The city with PUPR's tickets handed to the Open311 server at `endpoint`."""
    config = BackendConfig(send_method="open311", endpoint=endpoint, api_key_env=KEY_ENV)
    return with_backends(city, {"PUPR": config.model_copy(update=backend)})


def _budi(s: Session):
    """Their PUPR officer."""
    resident = s.scalar(select(Resident).where(Resident.platform_user_id == "9001"))
    return desk.officer_of(s, resident)


def _resident_report(assistant: Assistant) -> str:
    """Siti reports a pothole in chat, as on Telegram."""
    steps = [
        {"text": "jalan berlubang besar di Jl. Paus depan SD 12, Tangkerang Barat"},
        {"payload": "photo:skip"},
        {"payload": "privacy:biasa"},
        {"payload": "confirm:send"},
    ]
    for i, step in enumerate(steps):
        replies = assistant.handle(
            Incoming(
                channel="telegram", user_id="5001", update_id=f"u{i}", display_name="Siti", **step
            )
        )
    return next(w for r in replies for w in r.text.split() if w.startswith("PKU-"))


def _told(sessions, number: str) -> list[tuple[str, str]]:
    """What the resident's outbox holds for a ticket: template and the agency's words."""
    with sessions() as s:
        rows = s.scalars(
            select(Outbox)
            .join(Ticket, Ticket.id == Outbox.ticket_id)
            .where(Ticket.number == number, Outbox.audience == Audience.RESIDENT)
            .order_by(Outbox.id)
        )
        return [(r.template, r.params.get("note") or r.params.get("text", "")) for r in rows]


def test_a_ticket_travels_to_the_city_backend_and_its_updates_come_back_to_the_resident(
    tmp_path, city, parser, responses, faq
):
    backend_db = _instance(tmp_path, "backend", city)
    with backend_db.begin() as s:
        key = add_client(s, name="suara-warga", now=NOW)
        add_officer(
            s,
            channel="telegram",
            platform_user_id="9001",
            role=OfficerRole.OFFICER,
            agency_code="PUPR",
            display_name="Budi",
        )
    backend = Open311Context(backend_db, city, responses)
    with serving(create_app(None, open311=backend, open311_interval=None)) as backend_url:
        linked = _linked(city, backend_url + V2, jurisdiction_id="pekanbaru.go.id", poll_seconds=1)
        bot_db = _instance(tmp_path, "bot", linked)
        links = agency_links(linked.config, {KEY_ENV: key})
        assistant = Assistant(
            city=linked,
            nlu=parser,
            responses=responses,
            faq=faq,
            sessions=bot_db,
            clock=lambda: NOW,
        )
        front = Open311Context(bot_db, linked, responses, links=links, clock=lambda: NOW)
        with serving(create_app(None, open311=front, open311_interval=0.05)):
            number = _resident_report(assistant)

            # It travels over: created there as a report, routed to their PUPR.
            def theirs() -> tuple[Ticket, Resident] | None:
                with backend_db() as s:
                    return s.execute(select(Ticket, Resident).join(Ticket.reporter)).first()

            arrived = wait_for(theirs)
            assert arrived is not None, "the ticket never reached the city's backend"
            remote, reporter = arrived
            assert "Jl. Paus" in remote.description and reporter.display_name == "Siti"

            def ours() -> ExternalRequest | None:
                with bot_db() as s:
                    return s.scalar(select(ExternalRequest))

            link = wait_for(ours)
            assert link is not None and link.service_request_id == remote.number

            # Their officer works it; each change comes back to our resident.
            def act(action: Action | None, note: str) -> None:
                with backend_db.begin() as s:
                    ticket = s.get_one(Ticket, remote.id)
                    if action is None:
                        desk.reply(s, officer=_budi(s), ticket=ticket, text=note, now=NOW)
                    else:
                        desk.act(
                            s, officer=_budi(s), ticket=ticket, action=action, note=note, now=NOW
                        )

            expected = []
            for action, note, heard in [
                (Action.START, "Tim survei besok pagi", ["ticket.status.in_progress"]),
                (None, "Aspal datang Kamis", ["ticket.reply"]),
                (
                    Action.RESOLVE,
                    "Sudah ditambal",
                    ["ticket.status.resolved", "ticket.ask_rating"],
                ),
            ]:
                act(action, note)
                expected += [(heard[0], note), *((t, "") for t in heard[1:])]
                want = list(expected)
                assert wait_for(lambda want=want: _told(bot_db, number) == want), expected
    with bot_db() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket.status.value == "resolved"
        kinds = s.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket.id))
        assert EventKind.FORWARDED in set(kinds)
        handed = s.scalars(select(Outbox).where(Outbox.audience == Audience.EXTERNAL)).all()
        assert [(r.state, r.attempts) for r in handed] == [(OutboxState.SENT, 0)]  # once
    with backend_db() as s:  # their API reporter gets no chat messages there
        to_residents = select(func.count()).where(Outbox.audience == Audience.RESIDENT)
        assert s.scalar(to_residents) == 0
    shown = CliRunner().invoke(
        cli,
        ["ticket", "show", number],
        env={"DATABASE_URL": str(bot_db.kw["bind"].url)},
        catch_exceptions=False,
    )
    assert f"PUPR: sent, their id {remote.number} (closed)" in shown.output, shown.output


# ---------------------------------------------------------------- webhooks and failures


class Receiver:
    """An agency's system that takes tickets as signed webhooks (checked here independently)."""

    def __init__(self, secret: str) -> None:
        self.secret, self.received = secret.encode(), []

        async def hook(request: Request) -> JSONResponse:
            body = await request.body()
            expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
            if request.headers.get(SIGNATURE_HEADER) != expected:
                return JSONResponse({"error": "bad signature"}, status_code=403)
            self.received.append((request.headers, json.loads(body)))
            return JSONResponse({"service_request_id": "WH-77"}, status_code=201)

        self.app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])


def _signed(secret: str, payload: object) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {SIGNATURE_HEADER: f"sha256={digest}", "Content-Type": "application/json"}


def test_webhook_agency_gets_a_signed_ticket_and_only_signed_updates_move_it(
    loaded, city, responses
):
    secret = "rahasia-pupr-123"  # noqa: S105 - a test secret
    receiver = Receiver(secret)
    with serving(receiver.app) as agency_url:
        linked = with_backends(
            city,
            {
                "PUPR": BackendConfig(
                    send_method="webhook",
                    endpoint=agency_url + "/hook",
                    webhook_secret_env="WARGA_PUPR_WEBHOOK_SECRET",  # noqa: S106 - a name
                )
            },
        )
        sessions = _sessions(loaded)
        with sessions.begin() as s:
            sync_city(s, city=linked)
        number = _report(sessions, linked)
        links = agency_links(linked.config, {"WARGA_PUPR_WEBHOOK_SECRET": secret})
        ctx = Open311Context(sessions, linked, responses, links=links, clock=lambda: NOW)
        with serving(create_app(None, open311=ctx, open311_interval=0.05)) as url:
            assert wait_for(lambda: receiver.received), "the webhook never arrived"
            ((headers, body),) = receiver.received
            assert body["service_request"]["suara_warga_id"] == number
            assert headers["X-Warga-Delivery"].isdigit()
            hook = f"{url}/open311/updates/PUPR"
            update = {"service_request_id": "WH-77", "status": "open", "status_notes": "Dicek"}
            body, headers = _signed(secret, update)
            tampered = body.replace(b'"open"', b'"closed"')
            _, guessed = _signed("tebakan", update)
            assert httpx.post(hook, content=tampered, headers=headers).status_code == 403
            assert httpx.post(hook, content=body, headers=guessed).status_code == 403
            assert httpx.post(hook, content=body).status_code == 403
            assert httpx.post(hook, content=body, headers=headers).json() == {"applied": 1}
            assert httpx.post(hook, content=body, headers=headers).json() == {"applied": 0}
            assert httpx.post(f"{url}/open311/updates/DLHK", content=body).status_code == 404
    assert _told(sessions, number) == [("ticket.status.in_progress", "Dicek")]


def test_a_failed_hand_over_shows_in_tiket_and_ticket_show(
    loaded, city, responses, chat, make_ticket, session, tmp_path
):
    """First the agency's server is down (retried later), then it refuses our key (for good)."""
    backend_db = _instance(tmp_path, "backend", city)
    backend = Open311Context(backend_db, city, responses)
    with serving(create_app(None, open311=backend, open311_interval=None)) as backend_url:
        down = backend_url.rsplit(":", 1)[0] + ":9"  # nothing listens on the discard port
        linked = _linked(city, down + V2)
        sync_city(session, city=linked)
        ticket = make_ticket()
        add_officer(
            session,
            channel="console",
            platform_user_id="budi",
            role=OfficerRole.OFFICER,
            agency_code="PUPR",
            display_name="Budi",
        )
        session.commit()
        budi = chat("budi", "Budi")

        async def sweep(links_city: LoadedCity) -> int:
            links = agency_links(links_city.config, {KEY_ENV: "sw_salah"})
            ctx = Open311Context(
                _sessions(loaded), links_city, responses, links=links, clock=lambda: NOW
            )
            async with backends(ctx) as b:
                return await b.dispatcher.run_once()

        assert asyncio.run(sweep(linked)) == 0
        details = budi(f"/tiket {ticket.number}")
        assert "PUPR: gagal 1×, dicoba lagi" in details and "ConnectError" in details, details
        with session.begin():
            row = session.scalar(select(Outbox).where(Outbox.audience == Audience.EXTERNAL))
            assert row.next_attempt_at == NOW + timedelta(seconds=10)  # backoff
            row.next_attempt_at = NOW
        # Their server is up now, but our key is not theirs: no retry can help.
        assert asyncio.run(sweep(_linked(city, backend_url + V2))) == 0
    details = budi(f"/tiket {ticket.number}")
    assert "gagal dikirim setelah 2× percobaan: HTTP 403" in details, details
    shown = CliRunner().invoke(
        cli,
        ["ticket", "show", ticket.number],
        env={"DATABASE_URL": loaded.url.render_as_string(hide_password=False)},
        catch_exceptions=False,
    )
    assert "PUPR: FAILED after 2 attempts: HTTP 403: 403 api_key" in shown.output, shown.output


def test_operators_add_list_and_revoke_client_keys_and_only_a_hash_is_kept(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'keys.sqlite3'}"}

    def warga(*args: str) -> str:
        result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    warga("db", "upgrade")
    key = warga("open311", "key", "add", "dasbor-kominfo").splitlines()[-1]
    assert key.startswith("sw_") and len(key) > 40
    listing = warga("open311", "key", "list")
    assert "dasbor-kominfo" in listing and key[:10] in listing and key not in listing
    assert "active" in listing and "0 tickets" in listing
    engine = make_engine(env["DATABASE_URL"])
    with make_session_factory(engine)() as s:
        assert key not in repr(s.execute(select(ApiClient.__table__)).all())
        assert client_for_key(s, key) is not None
    warga("open311", "key", "revoke", "dasbor-kominfo")
    assert "revoked" in warga("open311", "key", "list")
    with make_session_factory(engine)() as s:
        assert client_for_key(s, key) is None
    engine.dispose()
    again = CliRunner().invoke(cli, ["open311", "key", "add", "dasbor-kominfo"], env=env)
    assert again.output.strip() == "Error: a client named 'dasbor-kominfo' exists already"
