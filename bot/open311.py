"""The Open311 GeoReport v2 API of `warga serve`, and the loop that feeds agencies' systems.

FastAPI (on the Starlette of bot/web.py) gives the OpenAPI documentation at /docs from the same
signatures that read and check each parameter. Every answer is JSON or XML as the path's
suffix asks; errors are the spec's array of {code, description}. The mapping itself lives in
actions/open311.py; this module only translates HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from xml.etree import ElementTree as ET  # noqa: N817 - the usual name

import httpx
from fastapi import FastAPI, Form, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from actions.city import LoadedCity
from actions.domain import Privacy
from actions.models import utcnow
from actions.open311 import (
    SIGNATURE_HEADER,
    AgencyLink,
    Forwarder,
    Open311Error,
    Poller,
    RequestFilter,
    Submission,
    client_for_key,
    parse_updates,
    parse_w3c,
    public_request_by_number,
    public_requests,
    receive_updates,
    request_for_token,
    service,
    services,
    submit,
)
from actions.public import ANONYMOUS_DECIMALS
from actions.signing import signature_ok
from bot.dispatcher import Dispatcher
from bot.responses import Responses
from nlu import redact

log = logging.getLogger(__name__)

PREFIX = "/open311/v2"
UPDATES_PATH = "/open311/updates/{agency}"
SWEEP_INTERVAL = 1.0  # seconds between sweeps of the hand-overs when nothing was due
HTTP_TIMEOUT = 10.0  # seconds for each call to an agency's system


class Format(StrEnum):
    JSON = "json"
    XML = "xml"


@dataclass
class Open311Context:
    """What the API and the hand-overs need, built by the entry point."""

    sessions: sessionmaker[Session]
    city: LoadedCity
    responses: Responses
    links: Mapping[str, AgencyLink] = field(default_factory=dict)
    clock: Callable[[], datetime] = utcnow

    def t(self, key: str, **params: object) -> str:
        return self.responses.get("id", key, **params)


# ---------------------------------------------------------------- rendering

# Elements of a list in XML: <services><service>…, <service_requests><request>…
_ITEM = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
}


def _xml(tag: str, data: Any) -> ET.Element:
    element = ET.Element(tag)
    if isinstance(data, list):
        element.extend(_xml(_ITEM[tag], item) for item in data)
    elif isinstance(data, dict):
        element.extend(_xml(key, value) for key, value in data.items())
    elif isinstance(data, bool):
        element.text = "true" if data else "false"
    elif data is not None:
        element.text = str(data)
    return element


def render(data: Any, fmt: str, root: str, status: int = 200) -> Response:
    """Answer in JSON, or in XML under `root` (the spec's element names)."""
    if fmt == Format.XML:
        body = ET.tostring(_xml(root, data), encoding="unicode", xml_declaration=False)
        return Response(
            '<?xml version="1.0" encoding="utf-8"?>\n' + body,
            status_code=status,
            media_type="text/xml; charset=utf-8",
        )
    return Response(
        json.dumps(data, ensure_ascii=False),
        status_code=status,
        media_type="application/json; charset=utf-8",
    )


def _errors(request: Request, status: int, descriptions: list[str]) -> Response:
    fmt = request.path_params.get("fmt", "json")
    data = [{"code": status, "description": d} for d in descriptions]
    return render(data, fmt if fmt in Format._value2member_map_ else "json", "errors", status)


# ---------------------------------------------------------------- the API

Fmt = Annotated[Format, Path(description="json or xml")]
Jurisdiction = Annotated[
    str | None, Query(description="Optional; must be this city's when given.")
]


def create_api(ctx: Open311Context) -> FastAPI:
    """Build the GeoReport v2 API (and /docs) over the store."""
    config = ctx.city.config
    api = FastAPI(
        title=f"Suara Warga — Open311 GeoReport v2 ({config.name})",
        description=(
            "Tickets of the city's residents as Open311 service requests. Public output never "
            "holds `rahasia` tickets, identities, phone numbers or NIK; `anonim` tickets have "
            f"their pin rounded to {ANONYMOUS_DECIMALS} decimals. POST needs an api_key "
            "(`warga open311 key add`)."
        ),
        version="2",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )

    def check(jurisdiction_id: str | None) -> None:
        if jurisdiction_id and jurisdiction_id != config.jurisdiction_id:
            raise Open311Error(
                404, f"jurisdiction_id: this server serves {config.jurisdiction_id}"
            )

    @api.exception_handler(Open311Error)
    async def refused(request: Request, exc: Open311Error) -> Response:
        return _errors(request, exc.code, [exc.description])

    @api.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{e['loc'][-1]}: {e['msg']}" if e.get("loc") else str(e["msg"]) for e in exc.errors()
        ]
        return _errors(request, 400, problems)

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _errors(request, exc.status_code, [str(exc.detail)])

    @api.get(f"{PREFIX}/services.{{fmt}}", summary="The service list (our categories)")
    def get_services(fmt: Fmt, jurisdiction_id: Jurisdiction = None) -> Response:
        check(jurisdiction_id)
        with ctx.sessions() as session:
            data = [
                {
                    "service_code": c.code,
                    "service_name": c.name,
                    "description": c.description,
                    "metadata": True,  # the privacy attribute
                    "type": "realtime",
                    "keywords": "",
                    "group": "",
                }
                for c in services(session)
            ]
        return render(data, fmt, "services")

    @api.get(f"{PREFIX}/services/{{service_code}}.{{fmt}}", summary="One service's attributes")
    def get_service(service_code: str, fmt: Fmt, jurisdiction_id: Jurisdiction = None) -> Response:
        check(jurisdiction_id)
        with ctx.sessions() as session:
            code = service(session, service_code).code
        privacy = {
            "variable": True,
            "code": "privacy",
            "datatype": "singlevaluelist",
            "required": False,
            "datatype_description": ctx.t("open311.privacy.datatype"),
            "order": 1,
            "description": ctx.t("open311.privacy.description"),
            "values": [{"key": p.value, "name": ctx.t(f"privacy.{p.value}")} for p in Privacy],
        }
        return render({"service_code": code, "attributes": [privacy]}, fmt, "service_definition")

    @api.get(f"{PREFIX}/requests.{{fmt}}", summary="Service requests, newest first")
    def get_requests(
        fmt: Fmt,
        jurisdiction_id: Jurisdiction = None,
        service_request_id: Annotated[
            str | None, Query(description="Comma-separated ids; overrides every other filter.")
        ] = None,
        service_code: Annotated[str | None, Query(description="Comma-separated.")] = None,
        start_date: Annotated[str | None, Query(description="W3C datetime.")] = None,
        end_date: Annotated[
            str | None, Query(description="W3C datetime; at most 90 days after start_date.")
        ] = None,
        status: Annotated[str | None, Query(description="open, closed, or both.")] = None,
        page: Annotated[int, Query(ge=1)] = 1,
        page_size: Annotated[int, Query(ge=1, le=1000)] = 1000,
    ) -> Response:
        check(jurisdiction_id)
        filt = RequestFilter(
            ids=_listed(service_request_id),
            service_codes=_listed(service_code),
            statuses=tuple(s.lower() for s in _listed(status)),
            start=parse_w3c(start_date, "start_date") if start_date else None,
            end=parse_w3c(end_date, "end_date") if end_date else None,
            page=page,
            page_size=page_size,
        )
        with ctx.sessions() as session:
            data = public_requests(session, city=config, filt=filt, now=ctx.clock(), redact=redact)
        return render(data, fmt, "service_requests")

    @api.get(f"{PREFIX}/requests/{{service_request_id}}.{{fmt}}", summary="One service request")
    def get_request(
        service_request_id: str, fmt: Fmt, jurisdiction_id: Jurisdiction = None
    ) -> Response:
        check(jurisdiction_id)
        with ctx.sessions() as session:
            data = public_request_by_number(
                session, number=service_request_id, city=config, redact=redact
            )
        return render([data], fmt, "service_requests")

    @api.get(f"{PREFIX}/tokens/{{token}}.{{fmt}}", summary="The request a POST's token became")
    def get_token(token: str, fmt: Fmt, jurisdiction_id: Jurisdiction = None) -> Response:
        check(jurisdiction_id)
        with ctx.sessions() as session:
            number = request_for_token(session, token)
        return render([{"service_request_id": number, "token": token}], fmt, "service_requests")

    @api.post(
        f"{PREFIX}/requests.{{fmt}}",
        summary="Report a problem (needs an api_key)",
        description="Creates a ticket as a resident's report would: numbered, routed to its "
        "agency, on the SLA clock. One transaction: a refused request writes nothing.",
    )
    def post_request(
        fmt: Fmt,
        api_key: Annotated[str, Form()] = "",
        jurisdiction_id: Annotated[str | None, Form()] = None,
        service_code: Annotated[str, Form()] = "",
        lat: Annotated[float | None, Form()] = None,
        long: Annotated[float | None, Form()] = None,
        address_string: Annotated[str, Form()] = "",
        address_id: Annotated[str, Form(description="A kelurahan's Kemendagri code.")] = "",
        description: Annotated[str, Form(max_length=4000)] = "",
        account_id: Annotated[str, Form()] = "",
        first_name: Annotated[str, Form()] = "",
        last_name: Annotated[str, Form()] = "",
        email: Annotated[str, Form(description="Not stored.")] = "",
        phone: Annotated[str, Form(description="Not stored.")] = "",
        device_id: Annotated[str, Form(description="Not stored.")] = "",
        media_url: Annotated[str, Form(description="Not stored.")] = "",
        privacy: Annotated[
            str, Form(alias="attribute[privacy]", description="biasa, anonim or rahasia.")
        ] = Privacy.BIASA.value,
    ) -> Response:
        check(jurisdiction_id)
        sub = Submission(
            service_code=service_code.strip(),
            description=description,
            lat=lat,
            long=long,
            address_string=address_string.strip(),
            address_id=address_id.strip(),
            account_id=account_id,
            name=f"{first_name} {last_name}".strip(),
            privacy=privacy.strip().lower(),
        )
        with ctx.sessions.begin() as session:
            client = client_for_key(session, api_key.strip())
            if client is None:
                raise Open311Error(403, "api_key: missing, unknown or revoked")
            made = submit(session, city=config, client=client, sub=sub, now=ctx.clock())
            ticket = made.ticket
            notice = ctx.t(
                "open311.service_notice",
                number=ticket.number,
                agency=ticket.agency.short_name if ticket.agency else "-",
                due=f"{ticket.first_response_due_at.astimezone(config.tz):%d-%m-%Y}"
                if ticket.first_response_due_at
                else "-",
            )
            data = {
                "service_request_id": ticket.number,
                "token": made.token,
                "service_notice": notice,
                "account_id": account_id or None,
            }
        return render([data], fmt, "service_requests", status=201)

    @api.post(
        UPDATES_PATH,
        summary="An agency's system tells us what changed (signed webhook)",
        description=f"Body: one service request or a list, as GET requests.json gives them. "
        f"Header {SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the raw body with the agency's "
        "webhook secret>.",
    )
    async def post_updates(agency: str, request: Request) -> Response:
        link = ctx.links.get(agency)
        if link is None or link.webhook_secret is None:
            raise Open311Error(404, f"no webhook for agency {agency!r}")
        body = await request.body()
        if not signature_ok(link.webhook_secret, body, request.headers.get(SIGNATURE_HEADER, "")):
            raise Open311Error(403, f"{SIGNATURE_HEADER}: missing or wrong")
        try:
            updates = parse_updates(json.loads(body))
        except ValueError:
            raise Open311Error(400, "the body is not JSON") from None

        def apply() -> int:
            with ctx.sessions.begin() as session:
                return receive_updates(
                    session, agency_code=agency, updates=updates, now=ctx.clock()
                )

        return render({"applied": await run_in_threadpool(apply)}, "json", "result")

    return api


def _listed(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


# ---------------------------------------------------------------- hand-overs and polling


@dataclass
class Backends:
    """The dispatcher that hands tickets to agencies' systems, and the poller of their updates."""

    dispatcher: Dispatcher
    poller: Poller

    async def sweep(self) -> int:
        """Hand over what is due and poll whoever is due; return how much happened."""
        return await self.dispatcher.run_once() + await self.poller.run_due()


@contextlib.asynccontextmanager
async def backends(ctx: Open311Context) -> AsyncIterator[Backends]:
    """Build the hand-over dispatcher and the poller over one shared HTTP client."""
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
        forwarder = Forwarder(ctx.city.config, ctx.links, http)
        dispatcher = Dispatcher(
            ctx.sessions, ctx.responses, {}, clock=ctx.clock, forwarder=forwarder
        )
        yield Backends(dispatcher, Poller(ctx.sessions, ctx.links, http, clock=ctx.clock))


async def run_backends(ctx: Open311Context, *, interval: float = SWEEP_INTERVAL) -> None:
    """Hand over and poll until cancelled (inside `warga serve` and `warga run`)."""
    async with backends(ctx) as b:
        while True:
            done = 0
            try:
                done = await b.sweep()
            except Exception:  # noqa: BLE001 - keep going; the log has the details
                log.exception("Open311 sweep failed")
            if not done:
                await asyncio.sleep(interval)
