"""Fuzz the Open311 API through the whole web app (Starlette with FastAPI mounted, in process) on
SQLite and PostgreSQL: generated paths, query parameters, methods, POSTed forms (with and without
a valid api_key) and signed agency webhooks, full of NUL, controls, lone surrogates, huge numbers
and odd dates.

What must hold for every answer (tests/support/open311_answers.py): never a 5xx; every error is
the spec's array in the URL's format (XML for .xml, else JSON) with the answer's status as its
code; every XML answer is well-formed (ElementTree and xmltodict); nothing of a rahasia ticket
appears in any answer.

WARGA_FUZZ_EXAMPLES sets the examples per store (`scripts/fuzz-open311` runs many more).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, quote_plus

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from support.cities import with_backends
from support.open311_answers import MARKER, check_answer

from actions.city import BackendConfig, LoadedCity, sync_city
from actions.db import make_session_factory
from actions.domain import Privacy, TicketKind
from actions.models import ExternalRequest, Ticket
from actions.open311 import MAX_PAGE, SIGNATURE_HEADER, add_client, agency_links
from actions.people import get_or_create_resident
from actions.tickets import create_ticket
from bot.open311 import Open311Context
from bot.web import create_app

RANDOM = os.environ.get("WARGA_FUZZ_EXAMPLES")  # set by scripts/fuzz-*: new examples each run
EXAMPLES = int(os.environ.get("WARGA_FUZZ_EXAMPLES", "200"))  # per store
DEADLINE = timedelta(seconds=5)  # one example: a request or two, a full page at most
NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
V2 = "/open311/v2"
SECRET = "rahasia-pupr-123"  # noqa: S105 - a test secret
KEY = "<the client's key>"  # replaced by the real key when the request is sent

# ---------------------------------------------------------------- what is sent

NASTY = [
    *"\x00\x01\x08\x0b\x0c\x1b\x7f\t\n\r \u202e\ufffd\ufffe\uffff",
    "\ud800",
    "\udfff",
    "%00",
    "%",
    "&",
    "=",
    "<",
    "]]>",
    "&amp;",
    "'",
    '"',
    ",",
    "/",
    "..",
    ".xml",
    ".json",
    "😀",
    "PKU-2026-000001",
]
ANY_CHAR = st.characters(codec=None, exclude_categories=())  # lone surrogates too
text = st.lists(st.one_of(st.sampled_from(NASTY), st.text(ANY_CHAR, max_size=6)), max_size=5).map(
    "".join
)
long_text = st.sampled_from(["x" * 4001, "é" * 600, "\x00" * 300, ",".join(["a"] * 1001)])
numbers = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(
        ["0", "1", "1000", "1001", str(MAX_PAGE), str(MAX_PAGE + 1), "1" + "0" * 5000]
        + ["1e3", "nan", "inf", "-inf", "-0", "0x10", "１２", " 5", "1_000", "0.51", "101.45"]
    ),
)
ZONES = ["Z", "+07:00", "-23:59", "+23:59", "+00:00", ""]
dates = st.one_of(
    st.builds(
        lambda when, zone: when.isoformat() + zone,
        st.datetimes(
            min_value=datetime(1, 1, 1),  # noqa: DTZ001 - naive: the zone is added as text
            max_value=datetime(9999, 12, 31, 23, 59),  # noqa: DTZ001
        ),
        st.sampled_from(ZONES),
    ),
    st.sampled_from(
        ["9999-12-31T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59"]
        + ["0001-01-01T00:00:00+23:59", "2026-11-30", "2026-11-30T10:00:00"]
        + ["2026-02-30T00:00:00Z", "2026-11-30T10:00:00+24:00", "2026-09-01T00:00:00+07:00"]
    ),
)
numbers_of_tickets = st.integers(1, 12).map(lambda n: f"PKU-2026-{n:06}")
ids = st.one_of(numbers_of_tickets, st.lists(numbers_of_tickets | text, max_size=4).map(",".join))
values = st.one_of(text, numbers, dates, ids, long_text)
segment = st.one_of(text, ids, st.sampled_from(["jalan", "sampah", "", "a.b", "services"]))
fmt = st.one_of(st.sampled_from(["json", "xml", "XML", "html", "", "json.xml", "xml.json"]), text)


def q(part: str) -> str:
    """Percent-encode as a client would; a lone surrogate goes as its (invalid) UTF-8 bytes."""
    return quote(part.encode("utf-8", "surrogatepass"), safe="")


def form(pairs: list[tuple[str, str]]) -> str:
    return "&".join(
        quote_plus(k.encode("utf-8", "surrogatepass"))
        + "="
        + quote_plus(v.encode("utf-8", "surrogatepass"))
        for k, v in pairs
    )


paths = st.one_of(
    st.builds(lambda f: f"{V2}/services.{q(f)}", fmt),
    st.builds(lambda s, f: f"{V2}/services/{q(s)}.{q(f)}", segment, fmt),
    st.builds(lambda f: f"{V2}/requests.{q(f)}", fmt),
    st.builds(lambda s, f: f"{V2}/requests/{q(s)}.{q(f)}", segment, fmt),
    st.builds(lambda s, f: f"{V2}/tokens/{q(s)}.{q(f)}", segment, fmt),
    st.builds(lambda s: f"{V2}/{q(s)}", segment),
    st.builds(lambda s: f"/{q(s)}", segment),
)
QUERY = ["service_code", "status", "start_date", "end_date", "page", "page_size"]
QUERY += ["service_request_id", "jurisdiction_id"]
query = st.lists(st.tuples(st.sampled_from(QUERY) | text, values), max_size=5)
FIELDS = ["api_key", "service_code", "lat", "long", "address_string", "address_id"]
FIELDS += ["description", "first_name", "last_name", "account_id", "attribute[privacy]"]
FIELDS += ["jurisdiction_id", "email", "phone", "device_id", "media_url"]


@dataclass
class Call:
    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _post(path: str, pairs: list[tuple[str, str]]) -> Call:
    ctype = {"Content-Type": "application/x-www-form-urlencoded"}
    return Call("POST", path, body=form(pairs).encode("ascii"), headers=ctype)


def mostly(good: st.SearchStrategy[str], bad: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Usually a good value, sometimes anything: so that requests get past the first check."""
    return st.sampled_from(range(10)).flatmap(lambda i: bad if i == 0 else good)


suffix = st.sampled_from(["json", "xml"])
# A form that is nearly right, so that tickets are really created, with anything in them.
plausible_form = st.fixed_dictionaries(
    {
        "api_key": mostly(st.just(KEY), st.sampled_from(["", "sw_tebakan"]) | text),
        "service_code": mostly(st.sampled_from(["jalan", "sampah"]), text),
        "description": st.one_of(
            st.builds(lambda a, b: f"jalan{a}berlubang{b}", text, text), text, long_text
        ),
        "lat": mostly(st.just("0.51"), numbers),
        "long": mostly(st.just("101.45"), numbers),
    },
    optional={
        "attribute[privacy]": mostly(st.sampled_from(["biasa", "anonim", "rahasia"]), text),
        "address_string": text | long_text,
        "address_id": mostly(st.just("14.71.01.1002"), text),
        "first_name": text | long_text,
        "last_name": text,
        "account_id": text,
        "jurisdiction_id": mostly(st.just("pekanbaru.go.id"), text),
        "email": text,
    },
).map(lambda d: list(d.items()))
# A query that is nearly right, so that requests are really read.
plausible_query = st.fixed_dictionaries(
    {},
    optional={
        "service_code": mostly(st.sampled_from(["jalan", "sampah", "jalan,sampah"]), values),
        "status": mostly(st.sampled_from(["open", "closed", "open,closed"]), values),
        "start_date": mostly(st.just("2026-11-01T00:00:00+07:00"), dates),
        "end_date": mostly(st.just("2026-11-30T23:00:00Z"), dates),
        "page": mostly(st.sampled_from(["1", "2"]), numbers),
        "page_size": mostly(st.sampled_from(["1", "10", "1000"]), numbers),
        "service_request_id": mostly(ids, values),
        "jurisdiction_id": mostly(st.just("pekanbaru.go.id"), values),
    },
).map(lambda d: list(d.items()))
plausible_paths = st.one_of(
    st.builds(lambda f: f"{V2}/requests.{f}", suffix),
    st.builds(lambda n, f: f"{V2}/requests/{n}.{f}", numbers_of_tickets, suffix),
    st.builds(lambda f: f"{V2}/services.{f}", suffix),
    st.builds(lambda c, f: f"{V2}/services/{c}.{f}", st.sampled_from(["jalan", "x"]), suffix),
)
posts = st.one_of(
    st.builds(_post, st.builds(lambda f: f"{V2}/requests.{f}", suffix), plausible_form),
    st.builds(_post, st.builds(lambda f: f"{V2}/requests.{q(f)}", fmt), plausible_form),
    st.builds(
        _post,
        st.builds(lambda f: f"{V2}/requests.{q(f)}", fmt),
        st.lists(st.tuples(st.sampled_from(FIELDS) | text, values), max_size=8),
    ),
    st.builds(
        lambda p, body, ctype: Call("POST", p, body=body, headers={"Content-Type": ctype}),
        paths,
        st.binary(max_size=64),
        st.sampled_from(
            ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
            + ["application/json", "text/plain", "multipart/form-data"]
        ),
    ),
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text | dates,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["service_request_id", "status"]) | text, inner, max_size=3
        )
    ),
    max_leaves=8,
)
updates = st.fixed_dictionaries(
    {},
    optional={
        "service_request_id": st.sampled_from(["R-1", "R-2"]) | st.integers() | json_values,
        "status": st.sampled_from(["open", "closed", "CLOSED"]) | json_values,
        "status_notes": text | long_text | json_values,
        "updated_datetime": dates | json_values,
    },
)


def _signed(agency: str, payload: object, sign: bool) -> Call:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if sign:
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers[SIGNATURE_HEADER] = f"sha256={digest}"
    return Call("POST", f"/open311/updates/{q(agency)}", body=body, headers=headers)


webhooks = st.builds(
    _signed,
    st.sampled_from(["PUPR", "PUPR", "DLHK"]) | text,
    updates | st.lists(updates, max_size=3) | json_values,
    st.booleans(),
)

calls = st.one_of(
    st.builds(Call, st.just("GET"), plausible_paths, plausible_query),
    st.builds(Call, st.just("GET"), plausible_paths, plausible_query),
    st.builds(Call, st.just("GET"), paths, query),
    st.builds(
        Call, st.sampled_from(["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "GET"]), paths, query
    ),
    posts,
    posts,
    webhooks,
)

# ---------------------------------------------------------------- what must hold


def _setup(engine: Engine, city: LoadedCity, responses) -> tuple[httpx.AsyncClient, str]:
    backend = BackendConfig(
        send_method="webhook",
        endpoint="http://127.0.0.1:9/hook",
        webhook_secret_env="WARGA_PUPR_WEBHOOK_SECRET",  # noqa: S106 - a name
    )
    linked = with_backends(city, {"PUPR": backend})
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        sync_city(s, city=linked)
        key = add_client(s, name="fuzz", now=NOW)
        siti = get_or_create_resident(
            s, channel="telegram", platform_user_id="5001", display_name="Siti"
        )
        for privacy, description in [(Privacy.RAHASIA, MARKER), (Privacy.BIASA, "jalan rusak")]:
            ticket = create_ticket(
                s,
                city=linked.config,
                reporter=siti,
                kind=TicketKind.LAPOR,
                category_code="jalan",
                description=description,
                privacy=privacy,
                now=NOW - timedelta(days=1),
            )
            s.flush()
            s.add(
                ExternalRequest(
                    ticket_id=ticket.id,
                    agency_id=ticket.agency_id,
                    service_request_id=f"R-{ticket.id}",
                )
            )
    links = agency_links(linked.config, {"WARGA_PUPR_WEBHOOK_SECRET": SECRET})
    ctx = Open311Context(sessions, linked, responses, links=links, clock=lambda: NOW)
    app = create_app(None, open311=ctx, open311_interval=None)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://warga"), key


def _rahasia(engine: Engine) -> set[str]:
    with make_session_factory(engine)() as s:
        return set(s.scalars(select(Ticket.number).where(Ticket.privacy == Privacy.RAHASIA)))


@pytest.mark.timeout(max(120, EXAMPLES // 10))
def test_no_generated_request_gets_a_5xx_an_ill_formed_answer_or_a_rahasia_ticket(
    loaded, city, responses
):
    client, key = _setup(loaded, city, responses)
    seen: dict[int, int] = {}
    loop = asyncio.new_event_loop()

    @settings(
        max_examples=EXAMPLES,
        deadline=DEADLINE,
        derandomize=RANDOM is None,  # the suite: the same examples every run
        database=None,  # nothing written into the work tree
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
    @given(call=calls)
    def run(call: Call) -> None:
        url = call.path
        if call.query:
            url += "?" + form([(k, v.replace(KEY, key)) for k, v in call.query])
        body = call.body.replace(quote_plus(KEY).encode(), key.encode()) if call.body else None
        response = loop.run_until_complete(
            client.request(call.method, url, content=body, headers=call.headers)
        )
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        check_answer(
            call.method,
            call.path,
            response.status_code,
            response.headers.get("content-type", ""),
            response.content,
            _rahasia(loaded) if call.method == "GET" and response.status_code < 300 else set(),
        )

    try:
        run()
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()
    # The fuzzing reached past the edge: tickets were created and read, not only refused.
    assert all(seen.get(status) for status in (200, 201, 400, 403, 404)), seen
