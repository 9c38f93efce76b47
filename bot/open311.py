"""The Open311 GeoReport v2 API of `warga serve`, and the loop that feeds agencies' systems.

FastAPI (on the Starlette of bot/web.py) gives the OpenAPI documentation at /docs from the same
signatures that read and check each parameter. Every answer is JSON or XML as the path's
suffix asks; errors are the spec's array of {code, description}, in the format the URL asks for,
whatever went wrong (unknown path, wrong method, malformed input, a body too large, a bug). Input
is checked here, at the edge: nothing with NUL or a control character reaches the store. The
mapping itself lives in actions/open311.py; this module only translates HTTP.
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
from fastapi import Depends, FastAPI, Form, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actions.city import LoadedCity
from actions.domain import Privacy
from actions.models import utcnow
from actions.open311 import (
    ADDRESS_LIMIT,
    DESCRIPTION_LIMIT,
    MAX_BODY,
    MAX_PAGE,
    MAX_REQUESTS,
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
    read_json,
    receive_updates,
    request_for_token,
    service,
    services,
    submit,
)
from actions.public import ANONYMOUS_DECIMALS
from actions.signing import signature_ok
from actions.text import NAME_LIMIT, clean, is_clean
from bot.dispatcher import Dispatcher
from bot.responses import Responses
from nlu import redact

log = logging.getLogger(__name__)

PREFIX = "/open311/v2"
UPDATES_PATH = "/open311/updates/{agency}"
SWEEP_INTERVAL = 1.0  # seconds between sweeps of the hand-overs when nothing was due
HTTP_TIMEOUT = 10.0  # seconds for each call to an agency's system
TOO_LARGE = f"the body is larger than {MAX_BODY} bytes"
DIRTY = "holds NUL, a control character or an unpaired surrogate"


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
        # The last line of defence: rows stored before input was cleaned, or words from an
        # agency's system, must not make the document ill-formed for every client.
        element.text = clean(str(data))
    return element


def render(
    data: Any, fmt: str, root: str, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Answer in JSON, or in XML under `root` (the spec's element names)."""
    if fmt == Format.XML:
        body = ET.tostring(_xml(root, data), encoding="unicode", xml_declaration=False)
        return Response(
            '<?xml version="1.0" encoding="utf-8"?>\n' + body,
            status_code=status,
            headers=headers,
            media_type="text/xml; charset=utf-8",
        )
    return Response(
        # JSON escapes control characters; a lone surrogate could not be encoded at all.
        json.dumps(data, ensure_ascii=False).encode("utf-8", "replace"),
        status_code=status,
        headers=headers,
        media_type="application/json; charset=utf-8",
    )


def format_of(path: str) -> Format:
    """The format a URL asks for: XML for the suffix .xml, JSON for anything else."""
    return Format.XML if path.lower().endswith(".xml") else Format.JSON


def error_response(
    path: str, status: int, descriptions: list[str], headers: Mapping[str, str] | None = None
) -> Response:
    """The spec's error array for a request to `path`, in the format its suffix asks for."""
    data = [{"code": status, "description": clean(d)} for d in descriptions]
    return render(data, format_of(path), "errors", status, headers)


def _errors(
    request: Request,
    status: int,
    descriptions: list[str],
    headers: Mapping[str, str] | None = None,
) -> Response:
    return error_response(request.scope["path"], status, descriptions, headers)


class Edge:
    """What the API does before and after any route: bodies over MAX_BODY refused with 413
    (by their Content-Length, or once the stream passes the limit, never read whole), and an
    unexpected exception logged with its traceback and answered 500, both in the spec's form."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and not (declared.isascii() and declared.isdigit()):
            await error_response(path, 400, ["Content-Length: not a number"])(scope, receive, send)
            return
        if declared is not None and int(declared) > MAX_BODY:
            await error_response(path, 413, [TOO_LARGE])(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY:  # a chunked body that said nothing of its size
                    raise HTTPException(413, TOO_LARGE)
            return message

        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, watched)
        except Exception as exc:
            if started:  # too late to answer; the server logs it
                raise
            _hide_parameters(exc)
            # The path only: a query string may hold an api_key; the body is never logged.
            log.error("Open311 %s %r failed", scope.get("method"), path, exc_info=exc)
            answer = error_response(path, 500, ["internal error; it is logged on the server"])
            await answer(scope, receive, send)


def _hide_parameters(exc: BaseException) -> None:
    """Keep a failed statement's parameters (what a client sent) out of the log."""
    stack, seen = [exc], set()
    while stack:
        each = stack.pop()
        if id(each) in seen:
            continue
        seen.add(id(each))
        if isinstance(each, StatementError):
            each.hide_parameters = True
        stack += [e for e in (each.__cause__, each.__context__) if e is not None]
        if isinstance(each, BaseExceptionGroup):
            stack += each.exceptions


async def clean_input(request: Request) -> None:
    """Refuse (400) a path segment or query parameter with NUL, a control character or an
    unpaired surrogate: PostgreSQL refuses NUL, XML the rest; such text reaches neither."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and not is_clean(value):
            raise Open311Error(400, f"{name}: {DIRTY}")
    for name, value in request.query_params.multi_items():
        if not is_clean(name):
            raise Open311Error(400, f"query parameter {name!r}: its name {DIRTY}")
        if not is_clean(value):
            raise Open311Error(400, f"{name}: {DIRTY}")


def _identifiers(**fields: str | None) -> None:
    """Refuse (400) an identifier with NUL or a control character: taking it out would make it
    another identifier."""
    for name, value in fields.items():
        if value and not is_clean(value):
            raise Open311Error(400, f"{name.replace('_privacy', '[privacy]')}: {DIRTY}")


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
        dependencies=[Depends(clean_input)],
    )
    api.add_middleware(Edge)

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
        description = str(exc.detail)
        if exc.status_code == 404 and description == "Not Found":  # no route matched
            description = "no such call; the calls are listed at /docs"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            description = f"method {request.method} is not allowed here; allowed: {allowed}"
        return _errors(request, exc.status_code, [description], exc.headers)

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
        page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
        page_size: Annotated[int, Query(ge=1, le=MAX_REQUESTS)] = MAX_REQUESTS,
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
        address_string: Annotated[str, Form(max_length=ADDRESS_LIMIT)] = "",
        address_id: Annotated[str, Form(description="A kelurahan's Kemendagri code.")] = "",
        description: Annotated[str, Form(max_length=DESCRIPTION_LIMIT)] = "",
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
        _identifiers(
            api_key=api_key,
            jurisdiction_id=jurisdiction_id,
            service_code=service_code,
            address_id=address_id,
            account_id=account_id,
            attribute_privacy=privacy,
        )
        check(jurisdiction_id)
        # Free text loses what cannot be stored or put in XML; its meaning stays.
        sub = Submission(
            service_code=service_code.strip(),
            description=clean(description),
            lat=lat,
            long=long,
            address_string=clean(address_string).strip(),
            address_id=address_id.strip(),
            account_id=account_id,
            name=f"{clean(first_name, NAME_LIMIT)} {clean(last_name, NAME_LIMIT)}".strip(),
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
        body = await request.body()  # at most MAX_BODY bytes: Edge stops reading past it
        if not signature_ok(link.webhook_secret, body, request.headers.get(SIGNATURE_HEADER, "")):
            raise Open311Error(403, f"{SIGNATURE_HEADER}: missing or wrong")
        updates = parse_updates(read_json(body))  # cleaned; any malformed item: 400

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
