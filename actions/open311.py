"""Open311 GeoReport v2: tickets as public service requests, and agencies' own systems.

In: API keys of the clients that may POST, the public view of tickets (privacy applied),
tickets created through the API. Out: routed tickets handed to an agency's system through the
outbox (`Forwarder`, run by the dispatcher with its leases, retries and backoff), and that
system's updates brought back (`Poller`, or a signed webhook) as ticket events. No web framework
here; outbound HTTP is one injected `httpx.AsyncClient`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload, sessionmaker

from actions.city import BackendConfig, CityConfig
from actions.domain import (
    OPEN_STATUSES,
    Audience,
    DomainError,
    EventKind,
    NotFound,
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
    Category,
    ExternalRequest,
    Outbox,
    Ticket,
    TicketEvent,
    utcnow,
)
from actions.people import get_or_create_resident
from actions.public import Redact, public_notes, public_view
from actions.signing import sign
from actions.text import NAME_LIMIT, TooDeep, clean, clean_json
from actions.tickets import API_CHANNEL, Action, add_reply, create_ticket, transition

log = logging.getLogger(__name__)

WINDOW = timedelta(days=90)  # the spec's default and widest date range of GET requests
MAX_REQUESTS = 1000  # the most requests one answer holds, and the most ids one filter lists
# Far past any city's tickets, and (page - 1) * page_size stays far inside the store's 64-bit
# OFFSET.
MAX_PAGE = 1_000_000_000
# Dates from outside: any 90-day window around them stays inside what datetime and the store
# can hold, whatever the offset.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
MAX_BODY = 1_000_000  # bytes of a body we read: a POST, a webhook, an agency's answer
DESCRIPTION_LIMIT = 4000  # characters of a POSTed description
ADDRESS_LIMIT = 500  # characters of a POSTed address_string
ID_LIMIT = 120  # characters of an agency's service_request_id or token (as the store keeps them)
NOTES_LIMIT = 4000  # characters of an agency's status_notes that we keep
SIGNATURE_HEADER = "X-Warga-Signature"
DELIVERY_HEADER = "X-Warga-Delivery"
_WORKING = frozenset({TicketStatus.ROUTED, TicketStatus.IN_PROGRESS, TicketStatus.REOPENED})


class Open311Error(DomainError):
    """A request the API refuses: an HTTP status and a description for the client."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def w3c(value: datetime | None, tz: Any) -> str | None:
    """Format a datetime as the spec wants it (W3C, with the city's offset)."""
    return value.astimezone(tz).isoformat(timespec="seconds") if value is not None else None


def parse_w3c(value: str, name: str) -> datetime:
    """Read a W3C datetime with its zone, from 1970 to 2999; Open311Error 400 otherwise."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Open311Error(
            400, f"{name}: not a W3C datetime (2026-11-30T10:00:00+07:00)"
        ) from None
    if parsed.tzinfo is None:
        raise Open311Error(400, f"{name}: the datetime needs a zone (Z or +07:00)")
    # Comparing aware datetimes never overflows; converting year 1 or 9999 to UTC, or adding
    # the 90-day window to it, would.
    if not EARLIEST <= parsed < LATEST:
        raise Open311Error(400, f"{name}: must lie between 1970-01-01 and 2999-12-31 (UTC)")
    return parsed


# ---------------------------------------------------------------- API keys


def hash_key(key: str) -> str:
    # Keys are 256 random bits: a plain SHA-256 cannot be reversed or guessed, and a lookup by
    # hash compares no secret byte by byte.
    return hashlib.sha256(key.encode()).hexdigest()


def add_client(session: Session, *, name: str, now: datetime) -> str:
    """Register a client of the POST API; return its key, which is stored only as a hash."""
    name = name.strip()
    if not name or len(name) > 80:
        raise DomainError("a client needs a name of 1 to 80 characters")
    if session.scalar(select(ApiClient.id).where(ApiClient.name == name)) is not None:
        raise DomainError(f"a client named {name!r} exists already")
    key = "sw_" + secrets.token_urlsafe(32)
    session.add(ApiClient(name=name, key_hash=hash_key(key), key_prefix=key[:10], created_at=now))
    session.flush()
    return key


def revoke_client(session: Session, *, name: str, now: datetime) -> None:
    client = session.scalar(select(ApiClient).where(ApiClient.name == name))
    if client is None:
        raise NotFound(f"no client named {name!r}")
    if client.revoked_at is None:
        client.revoked_at = now
    session.flush()


def list_clients(session: Session) -> list[tuple[ApiClient, int]]:
    """Return every client with the number of tickets it created."""
    counts = dict(
        session.execute(
            select(ApiSubmission.client_id, func.count()).group_by(ApiSubmission.client_id)
        ).all()
    )
    clients = session.scalars(select(ApiClient).order_by(ApiClient.name))
    return [(c, counts.get(c.id, 0)) for c in clients]


def client_for_key(session: Session, key: str) -> ApiClient | None:
    """Return the active client holding this key, or None."""
    if not key:
        return None
    return session.scalar(
        select(ApiClient).where(
            ApiClient.key_hash == hash_key(key), ApiClient.revoked_at.is_(None)
        )
    )


# ---------------------------------------------------------------- the public view


def services(session: Session) -> list[Category]:
    return list(session.scalars(select(Category).order_by(Category.code)))


def service(session: Session, code: str) -> Category:
    category = session.scalar(select(Category).where(Category.code == code))
    if category is None:
        raise Open311Error(404, f"no service_code {code!r}")
    return category


@dataclass(frozen=True)
class RequestFilter:
    """The filters of GET requests; `ids` overrides all the others, as the spec says."""

    ids: tuple[str, ...] = ()
    service_codes: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()  # open, closed
    start: datetime | None = None
    end: datetime | None = None
    page: int = 1
    page_size: int = MAX_REQUESTS


def _window(filt: RequestFilter, now: datetime) -> tuple[datetime, datetime]:
    start, end = filt.start, filt.end
    if start is None and end is None:
        return now - WINDOW, now
    if start is None:
        return end - WINDOW, end
    if end is None:
        return start, start + WINDOW
    if end < start:
        raise Open311Error(400, "end_date is before start_date")
    if end - start > WINDOW:
        raise Open311Error(400, "start_date to end_date may not span more than 90 days")
    return start, end


def public_requests(
    session: Session, *, city: CityConfig, filt: RequestFilter, now: datetime, redact: Redact
) -> list[dict[str, Any]]:
    """Return tickets as public service requests, newest first; `rahasia` ones never."""
    bad = sorted(set(filt.statuses) - {"open", "closed"})
    if bad:
        raise Open311Error(400, f"status: {bad[0]!r} is neither open nor closed")
    if not 1 <= filt.page_size <= MAX_REQUESTS or not 1 <= filt.page <= MAX_PAGE:
        raise Open311Error(400, f"page is 1 to {MAX_PAGE}; page_size is 1 to {MAX_REQUESTS}")
    for name, listed in (("service_request_id", filt.ids), ("service_code", filt.service_codes)):
        if len(listed) > MAX_REQUESTS:
            raise Open311Error(400, f"{name}: at most {MAX_REQUESTS} in one call")
    stmt = select(Ticket).where(Ticket.privacy != Privacy.RAHASIA)
    if filt.ids:
        stmt = stmt.where(Ticket.number.in_([i.strip().upper() for i in filt.ids]))
    else:
        start, end = _window(filt, now)
        stmt = stmt.where(Ticket.created_at >= start, Ticket.created_at <= end)
        if filt.service_codes:
            stmt = stmt.join(Ticket.category).where(Category.code.in_(filt.service_codes))
        if len(set(filt.statuses)) == 1:
            opened = Ticket.status.in_([s.value for s in OPEN_STATUSES])
            stmt = stmt.where(opened if filt.statuses[0] == "open" else ~opened)
    tickets = list(
        session.scalars(
            stmt.options(
                joinedload(Ticket.category),
                joinedload(Ticket.agency),
                joinedload(Ticket.area),
                joinedload(Ticket.reporter),
            )
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .limit(filt.page_size)
            .offset((filt.page - 1) * filt.page_size)
        )
    )
    notes = public_notes(session, [t.id for t in tickets])
    return [
        public_request(t, notes=notes.get(t.id, ""), city=city, redact=redact) for t in tickets
    ]


def public_request_by_number(
    session: Session, *, number: str, city: CityConfig, redact: Redact
) -> dict[str, Any]:
    """Return one public service request; 404 alike for unknown and `rahasia` tickets."""
    ticket = session.scalar(
        select(Ticket).where(
            Ticket.number == number.strip().upper(), Ticket.privacy != Privacy.RAHASIA
        )
    )
    if ticket is None:
        raise Open311Error(404, f"no service request {number!r}")
    notes = public_notes(session, [ticket.id]).get(ticket.id, "")
    return public_request(ticket, notes=notes, city=city, redact=redact)


def public_request(
    ticket: Ticket, *, notes: str, city: CityConfig, redact: Redact
) -> dict[str, Any]:
    """Map a ticket to a GeoReport v2 service request as anyone may read it.

    Its public view (`actions.public`): no identity ever (the format has no field for it);
    phone numbers and NIK redacted; for `anonim` tickets the pin is rounded and the address is
    only the kelurahan. `notes` are the ticket's public notes; a `rahasia` ticket is NotFound.
    """
    view = public_view(ticket, notes=notes, redact=redact)
    if view is None:
        raise Open311Error(404, f"no service request {ticket.number!r}")
    return {
        "service_request_id": ticket.number,
        "status": "open" if ticket.status.is_open else "closed",
        "status_notes": view.notes or None,
        "service_name": ticket.category.name,
        "service_code": ticket.category.code,
        "description": view.description,
        "agency_responsible": ticket.agency.name if ticket.agency is not None else None,
        "service_notice": None,
        "requested_datetime": w3c(ticket.created_at, city.tz),
        "updated_datetime": w3c(ticket.updated_at, city.tz),
        "expected_datetime": w3c(ticket.resolution_due_at, city.tz),
        "address": view.place or None,
        "address_id": ticket.area.code if ticket.area is not None else None,
        "zipcode": None,
        "lat": view.latitude,
        "long": view.longitude,
        "media_url": None,
    }


# ---------------------------------------------------------------- POST requests


@dataclass(frozen=True)
class Submission:
    """A POSTed service request, as the client sent it (already typed)."""

    service_code: str
    description: str = ""
    lat: float | None = None
    long: float | None = None
    address_string: str = ""
    address_id: str = ""
    account_id: str = ""
    name: str = ""
    privacy: str = Privacy.BIASA.value


def submit(
    session: Session, *, city: CityConfig, client: ApiClient, sub: Submission, now: datetime
) -> ApiSubmission:
    """Create a ticket from a POSTed service request, as a resident's report would be.

    Everything is checked before anything is written; the caller commits once.
    """
    category = session.scalar(select(Category).where(Category.code == sub.service_code))
    if category is None:
        raise Open311Error(400, f"service_code: no service {sub.service_code!r}")
    if not sub.description.strip():
        raise Open311Error(400, "description: required")
    if (sub.lat is None) != (sub.long is None):
        raise Open311Error(400, "lat and long: give both or neither")
    if sub.lat is not None and not (-90 <= sub.lat <= 90 and -180 <= (sub.long or 0) <= 180):
        raise Open311Error(400, "lat and long: out of range")
    if sub.lat is None and not sub.address_string.strip() and not sub.address_id:
        raise Open311Error(
            400, "a location is required: lat and long, address_string or address_id"
        )
    if sub.privacy not in Privacy._value2member_map_:
        raise Open311Error(400, "attribute[privacy]: one of biasa, anonim, rahasia")
    area = None
    if sub.address_id:
        area = session.scalar(select(Area).where(Area.code == sub.address_id.strip()))
        if area is None:
            raise Open311Error(400, f"address_id: no kelurahan or kecamatan {sub.address_id!r}")
    who = (
        f"{client.id}:{sub.account_id.strip()[:40]}" if sub.account_id.strip() else str(client.id)
    )
    reporter = get_or_create_resident(
        session,
        channel=API_CHANNEL,
        platform_user_id=who,
        display_name=sub.name.strip()[:NAME_LIMIT],
    )
    ticket = create_ticket(
        session,
        city=city,
        reporter=reporter,
        kind=TicketKind.LAPOR,
        category_code=category.code,
        description=sub.description,
        location_text=sub.address_string,
        latitude=sub.lat,
        longitude=sub.long,
        area=area,
        privacy=Privacy(sub.privacy),
        now=now,
    )
    submission = ApiSubmission(
        client_id=client.id, ticket=ticket, token=secrets.token_urlsafe(16), created_at=now
    )
    session.add(submission)
    session.flush()
    return submission


def request_for_token(session: Session, token: str) -> str:
    """Return the service_request_id a POST's token stands for."""
    number = session.scalar(
        select(Ticket.number).join(ApiSubmission.ticket).where(ApiSubmission.token == token)
    )
    if number is None:
        raise Open311Error(404, f"no token {token!r}")
    return number


# ---------------------------------------------------------------- agencies' systems


@dataclass(frozen=True)
class AgencyLink:
    """An agency's system as the city file describes it, with its secrets from the environment."""

    code: str
    backend: BackendConfig
    api_key: SecretStr | None = None
    webhook_secret: SecretStr | None = None

    @property
    def endpoint(self) -> str:
        return (self.backend.endpoint or "").rstrip("/")


def agency_links(config: CityConfig, environ: Mapping[str, str]) -> dict[str, AgencyLink]:
    """Return the agencies that have a system to send to, with their secrets.

    Raise DomainError naming the variable (never a value) when a secret is missing.
    """
    links: dict[str, AgencyLink] = {}
    for ac in config.agencies:
        backend = ac.backend
        if backend.send_method is SendMethod.NONE:
            continue
        found: dict[str, SecretStr | None] = {}
        for key, name in (
            ("api_key", backend.api_key_env),
            ("webhook_secret", backend.webhook_secret_env),
        ):
            if name is None:
                found[key] = None
                continue
            value = environ.get(name, "")
            if not value:
                raise DomainError(f"agency {ac.code}: the environment variable {name} is not set")
            found[key] = SecretStr(value)
        links[ac.code] = AgencyLink(code=ac.code, backend=backend, **found)
    return links


class ForwardError(Exception):
    """A hand-over that failed; `permanent` when retrying cannot help (refused, misconfigured)."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float = 0) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass(frozen=True)
class ForwardJob:
    """One ticket to hand to one agency's system, read inside the claiming transaction."""

    outbox_id: int
    agency: str
    agency_id: int
    ticket_id: int
    number: str
    fields: dict[str, str] = field(default_factory=dict)
    done_before: bool = False  # the agency's system has it already: nothing to send


@dataclass(frozen=True)
class ForwardResult:
    service_request_id: str | None
    token: str | None = None


class Forwarder:
    """Hand routed tickets to agencies' systems: Open311 POST requests.json, or a signed webhook.

    The dispatcher calls `prepare` while it holds the outbox row's lease, `send` outside any
    transaction, and `record` in the transaction that marks the row sent.
    """

    def __init__(
        self, city: CityConfig, links: Mapping[str, AgencyLink], http: httpx.AsyncClient
    ) -> None:
        self.city, self.links, self.http = city, dict(links), http

    def prepare(self, session: Session, row: Outbox) -> ForwardJob:
        """Read what the agency's system gets: what its officers would see in chat.

        The reporter's name only for `biasa` tickets; the privacy level goes along as
        attribute[privacy], so a system that publishes requests can keep `rahasia` ones out.
        """
        ticket = session.get_one(Ticket, row.ticket_id)
        agency = session.get_one(Agency, row.agency_id)
        link = self.links.get(agency.code)
        if link is None:
            raise ForwardError(f"{agency.code} has no system to send to", permanent=True)
        sent = session.scalar(
            select(ExternalRequest.id).where(
                ExternalRequest.ticket_id == ticket.id, ExternalRequest.agency_id == agency.id
            )
        )
        job = ForwardJob(row.id, agency.code, agency.id, ticket.id, ticket.number)
        if sent is not None:
            return replace(job, done_before=True)
        category = ticket.category.code
        fields = {
            "service_code": link.backend.service_codes.get(category, category),
            "description": ticket.description,
            "attribute[privacy]": ticket.privacy.value,
        }
        if link.backend.jurisdiction_id:
            fields["jurisdiction_id"] = link.backend.jurisdiction_id
        if ticket.latitude is not None and ticket.longitude is not None:
            fields["lat"], fields["long"] = str(ticket.latitude), str(ticket.longitude)
        area = ticket.area.name if ticket.area is not None else ""
        fields["address_string"] = (
            ", ".join(p for p in (ticket.location_text, area) if p) or self.city.name
        )
        if ticket.privacy is Privacy.BIASA and ticket.reporter.display_name:
            fields["first_name"] = ticket.reporter.display_name
        return replace(job, fields=fields)

    async def send(self, job: ForwardJob) -> ForwardResult:
        """POST the ticket; raise ForwardError (temporary or permanent) when it did not land."""
        if job.done_before:
            return ForwardResult(None)
        link = self.links[job.agency]
        method = link.backend.send_method
        try:
            if method is SendMethod.OPEN311:
                key = link.api_key.get_secret_value() if link.api_key else ""
                response = await fetch(
                    self.http,
                    "POST",
                    f"{link.endpoint}/requests.json",
                    data={**job.fields, "api_key": key},
                )
            else:
                body = json.dumps(
                    {"service_request": {"suara_warga_id": job.number, **job.fields}},
                    ensure_ascii=False,
                ).encode()
                response = await fetch(
                    self.http,
                    "POST",
                    link.endpoint,
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        SIGNATURE_HEADER: sign(link.webhook_secret or SecretStr(""), body),
                        DELIVERY_HEADER: str(job.outbox_id),  # the same on every retry
                    },
                )
        except httpx.HTTPError as exc:
            raise ForwardError(f"{type(exc).__name__}: {exc}") from exc
        _raise_for_status(response)
        try:
            answer = read_json(response.content) if response.content else {}
        except Open311Error:
            answer = None
        item = answer[0] if isinstance(answer, list) and answer else answer
        if not isinstance(item, dict):
            raise ForwardError("the answer is not JSON; check with the agency", permanent=True)
        sid, token = item.get("service_request_id"), item.get("token")
        if method is SendMethod.WEBHOOK and not sid:
            sid = job.number  # their updates may name our number
        if not sid and not token:
            raise ForwardError("the answer has no service_request_id or token", permanent=True)
        try:
            return ForwardResult(
                _remote_id(sid, "service_request_id") if sid else None,
                _remote_id(token, "token") if token else None,
            )
        except Open311Error as exc:
            raise ForwardError(f"the answer's {exc.description}", permanent=True) from None

    def record(
        self, session: Session, job: ForwardJob, result: ForwardResult, now: datetime
    ) -> None:
        """Keep their id (or token) and say so in the ticket's history."""
        if job.done_before:
            return
        session.add(
            ExternalRequest(
                ticket_id=job.ticket_id,
                agency_id=job.agency_id,
                service_request_id=result.service_request_id,
                token=result.token,
                created_at=now,
            )
        )
        session.add(
            TicketEvent(
                ticket_id=job.ticket_id,
                kind=EventKind.FORWARDED,
                body=result.service_request_id or "",
                data={
                    "agency": job.agency,
                    "service_request_id": result.service_request_id,
                    "token": result.token,
                },
                created_at=now,
            )
        )


def _raise_for_status(response: httpx.Response) -> None:
    code = response.status_code
    if code < 400:
        return
    detail = _error_text(response)
    if code == 429 or code >= 500:
        retry = response.headers.get("Retry-After", "")
        raise ForwardError(
            f"HTTP {code}: {detail}", retry_after=float(retry) if retry.isdigit() else 0
        )
    raise ForwardError(f"HTTP {code}: {detail}", permanent=True)


def _error_text(response: httpx.Response) -> str:
    """The description of an Open311 error array, else the start of the body (cleaned: it is
    kept as the hand-over's last error)."""
    try:
        data = response.json()
        return clean("; ".join(f"{e.get('code')} {e.get('description')}" for e in data), 300)
    except (ValueError, TypeError, AttributeError, RecursionError):
        return clean(response.text, 200)


_DECODED = frozenset({"content-encoding", "content-length", "transfer-encoding"})


async def fetch(http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Send a request to an agency's system; read at most MAX_BODY bytes of its answer.

    A larger answer (declared or streamed) is a permanent ForwardError, read no further.
    """
    too_large = ForwardError(f"the answer is larger than {MAX_BODY} bytes", permanent=True)
    async with http.stream(method, url, **kwargs) as response:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            raise too_large
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_BODY:
                raise too_large
    # The body is decoded already: the new response must not decode it again.
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _DECODED]
    return httpx.Response(
        response.status_code, headers=headers, content=bytes(body), request=response.request
    )


# ---------------------------------------------------------------- updates coming back


@dataclass(frozen=True)
class RemoteUpdate:
    """What an agency's system says of one request."""

    service_request_id: str
    status: str
    status_notes: str = ""
    updated: datetime | None = None


def read_json(body: bytes) -> Any:
    """Parse JSON from outside, every string cleaned; Open311Error 400 when it cannot be."""
    if len(body) > MAX_BODY:
        raise Open311Error(413, f"the body is larger than {MAX_BODY} bytes")
    try:
        return clean_json(json.loads(body))
    except TooDeep as exc:
        raise Open311Error(400, f"the body is {exc}") from None
    except (ValueError, RecursionError):  # the C parser gives up on deep nesting this way
        raise Open311Error(400, "the body is not JSON") from None


def _remote_id(value: Any, name: str) -> str:
    """An agency's id for a request (or a token): a short string or an integer, cleaned."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Open311Error(400, f"{name}: a string or a number")
    text = clean(str(value)).strip()
    if not text or len(text) > ID_LIMIT:
        raise Open311Error(400, f"{name}: 1 to {ID_LIMIT} characters")
    return text


def parse_update(item: Any) -> RemoteUpdate:
    """Read one service request as GET requests.json gives it; Open311Error 400 otherwise."""
    if not isinstance(item, dict) or not item.get("service_request_id"):
        raise Open311Error(400, "each update needs a service_request_id")
    status = item.get("status")
    if not isinstance(status, str) or status.strip().lower() not in ("open", "closed"):
        raise Open311Error(400, "status: open or closed")
    notes, updated = item.get("status_notes"), item.get("updated_datetime")
    if notes is not None and not isinstance(notes, str):
        raise Open311Error(400, "status_notes: a string or null")
    if updated is not None and not isinstance(updated, str):
        raise Open311Error(400, "updated_datetime: a W3C datetime or null")
    return RemoteUpdate(
        service_request_id=_remote_id(item["service_request_id"], "service_request_id"),
        status=status.strip().lower(),
        status_notes=clean(notes or "", NOTES_LIMIT).strip(),
        updated=parse_w3c(clean(updated), "updated_datetime") if updated else None,
    )


def parse_updates(data: Any) -> list[RemoteUpdate]:
    """Read service requests as GET requests.json (or a webhook) gives them: one or a list.

    All or nothing: one malformed item refuses the whole (Open311Error 400).
    """
    return [parse_update(item) for item in (data if isinstance(data, list) else [data])]


def apply_update(
    session: Session, *, agency_id: int, update: RemoteUpdate, now: datetime
) -> TicketEvent | None:
    """Turn what an agency's system says into the ticket's history, once.

    Closed there: the ticket is resolved here (their notes to the resident). New notes while
    still open: the first ones start the ticket (diproses), later ones reach the resident as
    the agency's reply. Anything already seen changes nothing.
    """
    link = session.scalar(
        select(ExternalRequest)
        .where(
            ExternalRequest.agency_id == agency_id,
            ExternalRequest.service_request_id == update.service_request_id,
        )
        .with_for_update()
    )
    if link is None or (update.status, update.status_notes) == (
        link.remote_status,
        link.remote_notes,
    ):
        return None
    status_changed = update.status != link.remote_status
    notes_changed = update.status_notes != link.remote_notes
    link.remote_status, link.remote_notes = update.status, update.status_notes
    link.remote_updated_at = update.updated or now
    ticket = session.get_one(Ticket, link.ticket_id)
    if ticket.agency_id != agency_id:
        session.flush()
        return None  # rerouted since: their word no longer moves it
    notes = update.status_notes
    if update.status == "closed" and ticket.status in _WORKING:
        return transition(session, ticket, Action.RESOLVE, actor=None, note=notes, now=now)
    if update.status == "open" and status_changed and not ticket.status.is_open:
        # Only the reporter reopens a ticket here: the officers see it and decide.
        event = TicketEvent(
            ticket_id=ticket.id,
            kind=EventKind.NOTE,
            body=notes,
            data={"agency": link.agency.code, "remote_status": update.status},
            created_at=now,
        )
        session.add(event)
        session.flush()
        return event
    if notes_changed and notes and ticket.status.is_open:
        if ticket.status in (TicketStatus.ROUTED, TicketStatus.REOPENED):
            return transition(session, ticket, Action.START, actor=None, note=notes, now=now)
        return add_reply(session, ticket, actor_id=None, text=notes, now=now)
    session.flush()
    return None


class Poller:
    """Read agencies' requests.json for the open tickets sent there, every poll_seconds."""

    BATCH = 50  # ids per GET, to keep the URL short

    def __init__(
        self,
        sessions: sessionmaker[Session],
        links: Mapping[str, AgencyLink],
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions, self.http, self.clock = sessions, http, clock
        self.links = {
            code: link
            for code, link in links.items()
            if link.backend.send_method is SendMethod.OPEN311 and link.backend.poll_seconds
        }
        self.last: dict[str, float] = {}  # when each agency was last polled (monotonic)

    async def run_due(self) -> int:
        """Poll every agency whose interval has passed; return how many updates were applied.

        One agency's failure is logged and never keeps the others from being polled.
        """
        applied = 0
        for code, link in self.links.items():
            now = time.monotonic()
            if now - self.last.get(code, -1e18) < link.backend.poll_seconds:
                continue
            self.last[code] = now
            try:
                applied += await self.poll(code)
            except Exception:  # noqa: BLE001 - the next agency still gets its turn
                log.exception("polling %s failed", code)
        return applied

    async def poll(self, code: str) -> int:
        """Poll one agency now; failures are logged and tried again at the next interval."""
        link = self.links[code]
        agency_id, rows = await asyncio.to_thread(self._open_requests, code)
        ids = []
        for row_id, sid, token in rows:
            if not sid:  # one token their system cannot resolve yet must not stop the rest
                try:
                    sid = await self._resolve_token(link, row_id, token)
                except (httpx.HTTPError, ValueError, ForwardError, Open311Error) as exc:
                    log.warning("polling %s: token %s not resolved: %s", code, token, exc)
            if sid:
                ids.append(sid)
        try:
            updates: list[RemoteUpdate] = []
            for i in range(0, len(ids), self.BATCH):
                updates += await self._get(link, ids[i : i + self.BATCH])
        except (httpx.HTTPError, ValueError, ForwardError, Open311Error) as exc:
            log.warning("polling %s failed: %s", code, exc)
            return 0
        applied = 0
        for update in updates:
            try:
                if await asyncio.to_thread(self._apply, agency_id, update):
                    applied += 1
            except Exception:  # noqa: BLE001 - one update must not keep back the others
                log.exception(
                    "polling %s: the update of %s not applied", code, update.service_request_id
                )
        return applied

    def _open_requests(self, code: str) -> tuple[int, list[tuple[int, str | None, str | None]]]:
        """The agency's id, and (row id, their id, token) of its open tickets sent there."""
        with self.sessions() as session:
            agency_id = session.scalar(select(Agency.id).where(Agency.code == code)) or 0
            rows = session.execute(
                select(
                    ExternalRequest.id, ExternalRequest.service_request_id, ExternalRequest.token
                )
                .join(Ticket, Ticket.id == ExternalRequest.ticket_id)
                .where(
                    ExternalRequest.agency_id == agency_id,
                    Ticket.agency_id == agency_id,
                    Ticket.status.in_([s.value for s in OPEN_STATUSES]),
                )
                .order_by(ExternalRequest.id)
            )
            return agency_id, [(row_id, sid, token) for row_id, sid, token in rows]

    async def _resolve_token(self, link: AgencyLink, row_id: int, token: str | None) -> str | None:
        """Ask their system which request a token became; keep the answer."""
        if token is None:
            return None
        response = await fetch(
            self.http, "GET", f"{link.endpoint}/tokens/{token}.json", params=self._params(link)
        )
        if response.status_code == 404:
            return None  # not created there yet
        _raise_for_status(response)
        data = read_json(response.content)
        first = data[0] if isinstance(data, list) and data else None
        if not isinstance(first, dict):
            raise Open311Error(400, "the answer is not a list of service requests")
        sid = first.get("service_request_id")
        if not sid:
            return None
        sid = _remote_id(sid, "service_request_id")
        await asyncio.to_thread(self._set_id, row_id, sid)
        return sid

    def _set_id(self, row_id: int, sid: str) -> None:
        with self.sessions.begin() as session:
            session.get_one(ExternalRequest, row_id).service_request_id = sid

    async def _get(self, link: AgencyLink, ids: Iterable[str]) -> list[RemoteUpdate]:
        """Their requests; a malformed one is logged and skipped, never stops the rest."""
        params = {**self._params(link), "service_request_id": ",".join(ids)}
        response = await fetch(self.http, "GET", f"{link.endpoint}/requests.json", params=params)
        _raise_for_status(response)
        data = read_json(response.content)
        updates = []
        for item in data if isinstance(data, list) else [data]:
            try:
                updates.append(parse_update(item))
            except Open311Error as exc:
                log.warning("polling %s: an update skipped: %s", link.code, exc.description)
        return updates

    @staticmethod
    def _params(link: AgencyLink) -> dict[str, str]:
        jurisdiction = link.backend.jurisdiction_id
        return {"jurisdiction_id": jurisdiction} if jurisdiction else {}

    def _apply(self, agency_id: int, update: RemoteUpdate) -> bool:
        with self.sessions.begin() as session:
            return (
                apply_update(session, agency_id=agency_id, update=update, now=self.clock())
                is not None
            )


def receive_updates(
    session: Session, *, agency_code: str, updates: Sequence[RemoteUpdate], now: datetime
) -> int:
    """Apply what an agency's system pushed (a signed webhook); return how many changed."""
    agency_id = session.scalar(select(Agency.id).where(Agency.code == agency_code))
    if agency_id is None:
        raise Open311Error(404, f"no agency {agency_code!r}")
    return sum(
        apply_update(session, agency_id=agency_id, update=u, now=now) is not None for u in updates
    )


# ---------------------------------------------------------------- what operators see


@dataclass(frozen=True)
class ForwardState:
    """One hand-over of a ticket to an agency's system, as operators see it."""

    agency: str
    state: OutboxState
    attempts: int
    last_error: str
    next_attempt_at: datetime
    service_request_id: str | None
    remote_status: str | None

    @property
    def phase(self) -> str:
        """sent, failed (for good), retrying (failed before, tried again later) or waiting."""
        if self.state is not OutboxState.PENDING:
            return self.state.value
        return "retrying" if self.attempts else "waiting"


def forwarding_of(session: Session, ticket: Ticket) -> list[ForwardState]:
    """Return the ticket's hand-overs to agencies' systems, failures included."""
    rows = session.execute(
        select(Outbox, Agency.code, ExternalRequest)
        .join(Agency, Agency.id == Outbox.agency_id)
        .outerjoin(
            ExternalRequest,
            (ExternalRequest.ticket_id == Outbox.ticket_id)
            & (ExternalRequest.agency_id == Outbox.agency_id),
        )
        .where(Outbox.ticket_id == ticket.id, Outbox.audience == Audience.EXTERNAL)
        .order_by(Outbox.id)
    ).all()
    return [
        ForwardState(
            agency=code,
            state=row.state,
            attempts=row.attempts,
            last_error=row.last_error,
            next_attempt_at=row.next_attempt_at,
            service_request_id=(link.service_request_id or link.token) if link else None,
            remote_status=link.remote_status if link else None,
        )
        for row, code, link in rows
    ]
