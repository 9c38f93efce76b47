"""Open311 at its edges: what an attacker or a broken client sends, and what an agency's system
sends back. Every answer is the spec's (never a 500), every XML answer is well-formed, and
nothing forbidden reaches the store."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree as ET  # noqa: N817 - the usual name

import httpx
import pytest
import xmltodict
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from support.cities import with_backends
from support.servers import serving

import bot.open311
from actions.city import BackendConfig, LoadedCity, sync_city
from actions.db import make_session_factory
from actions.domain import EventKind, Privacy, TicketKind, TicketStatus
from actions.models import ExternalRequest, Ticket, TicketEvent
from actions.open311 import SIGNATURE_HEADER, Poller, add_client, agency_links
from actions.people import get_or_create_resident
from actions.tickets import Action, create_ticket, transition
from bot.open311 import MAX_BODY, Open311Context
from bot.web import create_app

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
V2 = "/open311/v2"
CONTROLS = "\x01\x0b\x0c\x1b"
SECRET = "rahasia-pupr-123"  # noqa: S105 - a test secret
SECRET_ENV = "WARGA_PUPR_WEBHOOK_SECRET"  # noqa: S105 - a name


def _form(key: str, **changes: str) -> dict[str, str]:
    form = {
        "api_key": key,
        "service_code": "jalan",
        "description": "jalan berlubang",
        "lat": "0.51",
        "long": "101.45",
        "first_name": "Budi",
    }
    return form | changes


def _xml(content: bytes) -> ET.Element:
    return ET.fromstring(content)  # noqa: S314 - our own server's answer, which is the point


def _error(response: httpx.Response) -> tuple[int, str]:
    """The one error of an answer in the spec's form, in JSON or XML as its URL asked."""
    if response.url.path.endswith(".xml"):
        assert response.headers["content-type"].startswith("text/xml"), response.text
        root = _xml(response.content)
        assert root.tag == "errors", response.text
        (error,) = root
        assert [child.tag for child in error] == ["code", "description"]
        code, description = int(error.findtext("code")), error.findtext("description")
    else:
        assert response.headers["content-type"].startswith("application/json"), response.text
        ((code, description),) = [(e["code"], e["description"]) for e in response.json()]
    assert code == response.status_code
    return code, description


@pytest.fixture
def api(loaded: Engine, city: LoadedCity, responses):
    """Our API on a real port over both stores, with one client key."""
    sessions = make_session_factory(loaded)
    with sessions.begin() as s:
        key = add_client(s, name="aplikasi-rt", now=NOW)
    ctx = Open311Context(sessions, city, responses, clock=lambda: NOW)
    with serving(create_app(None, open311=ctx, open311_interval=None)) as url:
        with httpx.Client(base_url=url) as http:
            yield http, key, sessions


def _tickets(sessions: sessionmaker[Session]) -> list[Ticket]:
    with sessions() as s:
        return list(s.scalars(select(Ticket).order_by(Ticket.id)))


# ---------------------------------------------------------------- input checked at the edge


def test_a_nul_in_a_query_parameter_or_a_path_segment_is_refused_with_400_naming_it(api):
    http, _, _ = api
    refused = {
        f"{V2}/requests.json?service_code=jal%00an": "service_code",
        f"{V2}/requests.xml?status=open%00": "status",
        f"{V2}/requests.json?service_request_id=PKU%00": "service_request_id",
        f"{V2}/requests.json?start_date=2026-11-01T00:00:00Z%00": "start_date",
        f"{V2}/services.json?jurisdiction_id=pekanbaru.go.id%00": "jurisdiction_id",
        f"{V2}/requests/PKU-2026-000001%00.json": "service_request_id",
        f"{V2}/services/jalan%1b.xml": "service_code",
        f"{V2}/tokens/%00.json": "token",
        f"{V2}/requests.json?%00=1": "query parameter",
    }
    for url, name in refused.items():
        response = http.get(url)
        code, description = _error(response)
        assert code == 400, (url, response.text)
        assert description.startswith(name), (url, description)


def test_a_nul_in_a_posted_identifier_is_refused_and_in_a_text_field_is_taken_out(api):
    http, key, sessions = api
    for field in ("api_key", "service_code", "address_id", "account_id", "jurisdiction_id"):
        value = (key if field == "api_key" else "3171") + "\x00"
        response = http.post(f"{V2}/requests.xml", data=_form(key, **{field: value}))
        code, description = _error(response)
        assert (code, description.split(":")[0]) == (400, field), response.text
    assert _tickets(sessions) == []  # nothing reached the store
    made = http.post(
        f"{V2}/requests.json",
        data=_form(
            key,
            description="lubang\x00 dalam" + CONTROLS,
            address_string="Jl.\x00 Paus",
            first_name="Bu\x00di",
            last_name="x" * 500,
        ),
    )
    assert made.status_code == 201, made.text
    (ticket,) = _tickets(sessions)
    assert (ticket.description, ticket.location_text) == ("lubang dalam", "Jl. Paus")
    with sessions() as s:
        reporter = s.get_one(Ticket, ticket.id).reporter
        assert reporter.display_name.startswith("Budi x") and len(reporter.display_name) == 200


def test_a_huge_page_is_refused_with_400_and_the_last_page_allowed_answers(api):
    http, _, _ = api
    code, description = _error(http.get(f"{V2}/requests.json?page=10000000000000000"))
    assert code == 400 and description.startswith("page"), description
    code, description = _error(http.get(f"{V2}/requests.xml?page=1" + "0" * 5000))
    assert code == 400 and description.startswith("page"), description
    last = http.get(f"{V2}/requests.json", params={"page": bot.open311.MAX_PAGE})
    assert (last.status_code, last.json()) == (200, [])
    many = ",".join(f"PKU-2026-{i:06}" for i in range(1001))
    code, description = _error(
        http.get(f"{V2}/requests.json", params={"service_request_id": many})
    )
    assert code == 400 and description.startswith("service_request_id"), description


@pytest.mark.parametrize(
    "params",
    [
        {"start_date": "9999-12-31T00:00:00Z"},
        {"end_date": "0001-01-01T00:00:00Z"},
        {"start_date": "0001-01-01T00:00:00+07:00", "end_date": "0001-02-01T00:00:00Z"},
        {"end_date": "9999-12-31T23:59:59-23:59"},
    ],
)
def test_a_date_where_the_90_day_window_would_overflow_is_refused_with_400(api, params):
    http, _, _ = api
    for fmt in ("json", "xml"):
        code, description = _error(http.get(f"{V2}/requests.{fmt}", params=params))
        assert code == 400, description
        assert description.split(":")[0] in params and "1970" in description, description


# ---------------------------------------------------------------- errors in the URL's format


def test_routing_errors_answer_in_the_specs_form_and_the_urls_format(api):
    http, _, _ = api
    answers = {
        ("GET", f"{V2}/discovery.xml"): 404,
        ("GET", f"{V2}/discovery.json"): 404,
        ("GET", f"{V2}/requests"): 404,
        ("GET", "/tidak/ada.xml"): 404,
        ("DELETE", f"{V2}/requests.xml"): 405,
        ("PUT", f"{V2}/services.json"): 405,
        ("GET", f"{V2}/requests.html"): 400,
        ("GET", f"{V2}/requests.json?page=nol"): 400,
        ("GET", f"{V2}/requests.xml?page_size=1001"): 400,
    }
    for (method, url), status in answers.items():
        response = http.request(method, url)
        assert _error(response)[0] == status, (method, url, response.text)
    assert "GET" in http.delete(f"{V2}/requests.xml").headers["allow"]


def test_a_path_with_a_newline_is_answered_in_the_specs_form(api):
    http, _, _ = api
    assert _error(http.get(f"{V2}/requests/PKU%0A.xml"))[0] == 404


def test_an_unexpected_failure_is_logged_with_its_traceback_and_answered_500_in_the_spec_form(
    api, monkeypatch, caplog
):
    http, key, _ = api
    from sqlalchemy.exc import StatementError

    def broken(*args: Any, **kwargs: Any) -> None:
        raise StatementError("boom", "INSERT …", {"p": kwargs["sub"].description}, None)

    monkeypatch.setattr(bot.open311, "submit", broken)
    monkeypatch.setattr(bot.open311, "public_requests", broken)
    with caplog.at_level(logging.ERROR, logger="bot.open311"):
        for fmt in ("json", "xml"):
            response = http.post(f"{V2}/requests.{fmt}", data=_form(key, description="RAHASIA-X"))
            assert _error(response)[0] == 500, response.text
            assert "RAHASIA-X" not in response.text and "boom" not in response.text
        assert _error(http.get(f"{V2}/requests.xml"))[0] == 500
    logged = "\n".join(caplog.text.splitlines())
    assert "Traceback" in logged and "broken" in logged and "StatementError" in logged
    assert "RAHASIA-X" not in logged and key not in logged


def test_a_body_over_1_mb_is_refused_with_413_without_reading_it_whole(pupr, responses):
    linked, sessions = pupr
    links = agency_links(linked.config, {SECRET_ENV: SECRET, "WARGA_PUPR_API_KEY": "k"})
    ctx = Open311Context(sessions, linked, responses, links=links, clock=lambda: NOW)
    app = create_app(None, open311=ctx, open311_interval=None)
    chunk = b"a" * 65536
    total = 64 * MAX_BODY  # far more than anyone should read

    async def post(path: str, *, declared: bool) -> tuple[int, bytes, int]:
        pulled = 0

        async def receive() -> dict[str, Any]:
            nonlocal pulled
            pulled += 1
            more = pulled * len(chunk) < total
            return {"type": "http.request", "body": chunk, "more_body": more}

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        headers = [(b"content-type", b"application/x-www-form-urlencoded")]
        if declared:
            headers.append((b"content-length", str(total).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        await app(scope, receive, send)
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return sent[0]["status"], body, pulled

    for path in (f"{V2}/requests.xml", f"{V2}/requests.json", "/open311/updates/PUPR"):
        for declared in (True, False):
            status, body, pulled = asyncio.run(post(path, declared=declared))
            assert status == 413, (path, declared, body)
            assert pulled * len(chunk) <= MAX_BODY + len(chunk), pulled
            if path.endswith(".xml"):
                assert _xml(body).findtext("error/code") == "413"
            else:
                assert json.loads(body)[0]["code"] == 413


# ---------------------------------------------------------------- XML is always well-formed


def test_control_characters_in_a_posted_description_never_make_requests_xml_ill_formed(api, city):
    http, key, sessions = api
    made = http.post(f"{V2}/requests.json", data=_form(key, description=f"a{CONTROLS}b"))
    assert made.status_code == 201, made.text
    # Older rows and agencies' words may hold them already: the XML is well-formed all the same.
    with sessions.begin() as s:
        siti = get_or_create_resident(
            s, channel="telegram", platform_user_id="1", display_name="S"
        )
        old = create_ticket(
            s,
            city=city.config,
            reporter=siti,
            kind=TicketKind.LAPOR,
            category_code="jalan",
            description=f"lama{CONTROLS}\ufffe",
            location_text=f"Jl.{CONTROLS}",
            privacy=Privacy.BIASA,
            now=NOW - timedelta(days=1),
        )
        transition(s, old, Action.START, actor=None, note=f"dicek{CONTROLS}", now=NOW)
    for path in ("/requests.xml", f"/requests/{made.json()[0]['service_request_id']}.xml"):
        xml = http.get(V2 + path)
        assert xml.status_code == 200, xml.text
        root = _xml(xml.content)
        parsed = xmltodict.parse(xml.content)
        assert parsed["service_requests"] is not None
        texts = [e.text or "" for e in root.iter()]
        assert not any(c in t for t in texts for c in CONTROLS + "\ufffe"), texts
    descriptions = [
        r.findtext("description") for r in _xml(http.get(V2 + "/requests.xml").content)
    ]
    assert sorted(descriptions) == ["ab", "lama"]


# ---------------------------------------------------------------- agencies' systems


def _signed(payload: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), payload, hashlib.sha256).hexdigest()
    return {SIGNATURE_HEADER: f"sha256={digest}", "Content-Type": "application/json"}


@pytest.fixture
def pupr(loaded: Engine, city: LoadedCity):
    """PUPR with its own system (webhook and polling), and one ticket handed to it as R-1."""
    backend = BackendConfig(
        send_method="open311",
        endpoint="http://127.0.0.1:9/open311/v2",
        api_key_env="WARGA_PUPR_API_KEY",
        webhook_secret_env=SECRET_ENV,
        poll_seconds=1,
    )
    linked = with_backends(city, {"PUPR": backend})
    sessions = make_session_factory(loaded)
    with sessions.begin() as s:
        sync_city(s, city=linked)
        siti = get_or_create_resident(
            s, channel="telegram", platform_user_id="1", display_name="S"
        )
        ticket = create_ticket(
            s,
            city=linked.config,
            reporter=siti,
            kind=TicketKind.LAPOR,
            category_code="jalan",
            description="jalan berlubang",
            privacy=Privacy.BIASA,
            now=NOW,
        )
        s.flush()
        s.add(
            ExternalRequest(
                ticket_id=ticket.id, agency_id=ticket.agency_id, service_request_id="R-1"
            )
        )
    return linked, sessions


def _events(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    """What agencies' systems changed: the events after each ticket's creation and routing."""
    with sessions() as s:
        rows = s.execute(
            select(TicketEvent.kind, TicketEvent.body, TicketEvent.to_status).order_by(
                TicketEvent.id
            )
        )
        return [
            (str(kind), body)
            for kind, body, to in rows
            if kind is not EventKind.CREATED and to != TicketStatus.ROUTED
        ]


def test_the_agencies_webhook_refuses_malformed_bodies_with_400_and_cleans_what_it_keeps(
    pupr, responses
):
    linked, sessions = pupr
    links = agency_links(linked.config, {SECRET_ENV: SECRET, "WARGA_PUPR_API_KEY": "k"})
    ctx = Open311Context(sessions, linked, responses, links=links, clock=lambda: NOW)
    good = {"service_request_id": "R-1", "status": "open"}
    malformed = [
        b"[" * 100_000 + b"]" * 100_000,  # deeper than any parser's stack
        b'{"a": ' * 40 + b"1" + b"}" * 40,  # deeper than any agency nests
        b"\xff\xfe not json",
        b"1" * 5000,  # an integer Python will not parse
        json.dumps([good, {"status": "open"}]).encode(),
        json.dumps(good | {"service_request_id": {"id": 1}}).encode(),
        json.dumps(good | {"service_request_id": "R" * 500}).encode(),
        json.dumps(good | {"status": ["closed"]}).encode(),
        json.dumps(good | {"status_notes": {"a": 1}}).encode(),
        json.dumps(good | {"updated_datetime": "0001-01-01T00:00:00Z"}).encode(),
        json.dumps(good | {"updated_datetime": 12}).encode(),
    ]
    with serving(create_app(None, open311=ctx, open311_interval=None)) as url:
        hook = f"{url}/open311/updates/PUPR"
        for body in malformed:
            response = httpx.post(hook, content=body, headers=_signed(body))
            assert _error(response)[0] == 400, (body[:60], response.text)
        assert _events(sessions) == []
        kept = json.dumps(good | {"status_notes": f"dicek\x00 besok{CONTROLS}\ud800"}).encode()
        response = httpx.post(hook, content=kept, headers=_signed(kept))
        assert response.json() == {"applied": 1}, response.text
    assert _events(sessions) == [("status_changed", "dicek besok\ufffd")]


class Agency:
    """An agency's Open311 server whose requests.json answers whatever the test sets."""

    def __init__(self) -> None:
        self.body: bytes = b"[]"
        self.tokens: bytes = b"[]"

        async def requests(request: Request) -> Response:
            return Response(self.body, media_type="application/json")

        async def tokens(request: Request) -> Response:
            return Response(self.tokens, media_type="application/json")

        self.app = Starlette(
            routes=[
                Route("/open311/v2/requests.json", requests),
                Route("/open311/v2/tokens/{token}.json", tokens),
            ]
        )


def test_the_poller_skips_malformed_updates_and_oversized_answers_and_never_gets_stuck(
    pupr, caplog
):
    linked, sessions = pupr
    agency = Agency()
    with serving(agency.app) as url:
        relinked = with_backends(
            linked,
            {
                "PUPR": BackendConfig(
                    send_method="open311",
                    endpoint=url + "/open311/v2",
                    api_key_env="WARGA_PUPR_API_KEY",
                    poll_seconds=1,
                )
            },
        )
        links = agency_links(relinked.config, {"WARGA_PUPR_API_KEY": "k"})
        with sessions.begin() as s:  # and one more ticket, known there only by a token
            first = s.scalar(select(ExternalRequest))
            ticket = s.get_one(Ticket, first.ticket_id)
            other = create_ticket(
                s,
                city=relinked.config,
                reporter=ticket.reporter,
                kind=TicketKind.LAPOR,
                category_code="jalan",
                description="lampu mati",
                privacy=Privacy.BIASA,
                now=NOW,
            )
            s.flush()
            s.add(ExternalRequest(ticket_id=other.id, agency_id=other.agency_id, token="tok"))  # noqa: S106

        async def poll() -> int:
            async with httpx.AsyncClient() as http:
                return await Poller(sessions, links, http, clock=lambda: NOW).poll("PUPR")

        agency.tokens = json.dumps(["bukan objek", {"service_request_id": {"x": 1}}]).encode()
        for oversized in (b"[" + b" " * (MAX_BODY + 10) + b"]", b"[" * 200_000, b"\xff"):
            agency.body = oversized
            with caplog.at_level(logging.WARNING, logger="actions.open311"):
                assert asyncio.run(poll()) == 0
        assert "larger than 1000000 bytes" in caplog.text and "not JSON" in caplog.text
        agency.body = json.dumps(
            [
                {"service_request_id": "R-1", "status": "maybe"},
                {"service_request_id": {"id": "R-1"}, "status": "closed"},
                {"status": "closed"},
                "R-1",
                {"service_request_id": "R-1", "status": "open", "updated_datetime": "9999-12-31"},
                {
                    "service_request_id": "R-1",
                    "status": "open",
                    "status_notes": f"dicek\x00{CONTROLS}",
                },
            ]
        ).encode()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="actions.open311"):
            assert asyncio.run(poll()) == 1
        assert caplog.text.count("skipped") == 5, caplog.text
    assert _events(sessions) == [("status_changed", "dicek")]
    with sessions() as s:
        assert s.get_one(Ticket, first.ticket_id).status is TicketStatus.IN_PROGRESS
