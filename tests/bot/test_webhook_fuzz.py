"""Fuzz of the Telegram and the WhatsApp webhook through the real web app, store and workers.

Each example posts one generated body, with a valid secret (Telegram) or signature (WhatsApp):

* arbitrary JSON: any characters (lone surrogates, NUL, noncharacters), huge integers, floats
  (NaN and infinities too), nesting around the limit; or bytes that are not JSON at all;
* a realistic update or payload, built as the platforms build them (`fake_bot_updates`,
  `whatsapp_graph`), with one field replaced by arbitrary JSON, removed, joined by another,
  or with its text replaced by hostile text.

Properties: the answer is 200, 400 or 413, never 5xx; a refused body stores nothing; what was
stored is handled by the workers at the first try (nothing left in the inbox, no error
logged, no message given up on); and afterwards a resident the bot knows is still answered.

`WARGA_FUZZ_EXAMPLES` sets the examples per webhook and backend (default below);
`scripts/fuzz-webhooks` runs the same tests with many more.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import fake_bot_updates as tg
from support.fake_bot_api import FakeServer, running
from support.webhooks import (
    PAIR_INTERVAL,
    WA_TOKEN,
    Failures,
    Hooks,
    OpenWindow,
    TelegramUser,
    WhatsAppUser,
    next_id,
    wamid,
)
from support.whatsapp_graph import (
    FakeGraph,
    button_reply,
    image,
    list_reply,
    location,
    message_payload,
    status_payload,
    template_button,
    text,
)

RANDOM = os.environ.get("WARGA_FUZZ_EXAMPLES")  # set by scripts/fuzz-*: new examples each run
EXAMPLES = int(os.environ.get("WARGA_FUZZ_EXAMPLES", "150"))
SITI_TG = 5001
SITI_WA = "6281276543210"
STORED = 0  # the key of the count of updates stored, beside the counts of answers


def fuzz(test: Any) -> Any:
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=RANDOM is None,  # the suite: the same examples every run
        database=None,  # nothing written into the work tree; a failure prints its example
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )(test)


# -- what is generated ----------------------------------------------------------------------------

# Any character at all: surrogates (Cs), controls, unassigned code points.
anything = st.characters(exclude_categories=())
SHARP = [
    "\x00",
    "\ud800",
    "\udfff",
    "\ud83d",  # the first half of an emoji
    "\ufffe",
    "\uffff",
    "\x1b[2J",
    "\u202e",  # right-to-left override
    "\r\n",
    "",
    " ",
    "/start",
    "/lapor",
    "/status PKU-2026-000001",
    "/ambil PKU-2026-000001",
    "confirm:send",
    "officer:take:PKU-2026-000001",
    "privacy:rahasia",
]
# Lengths at and over the limits of the platforms and the store: ids (160), names (200),
# file ids (255), captions (1,024), texts (4,096).
LIMITS = [150, 151, 160, 161, 200, 201, 255, 256, 1024, 1025, 4096, 4097]
long_text = st.builds(
    str.__mul__, st.sampled_from(["a", " ", "😀", "\x00", "\ud800"]), st.sampled_from(LIMITS)
)
hostile_text = st.one_of(
    st.text(anything, max_size=40),
    st.sampled_from(SHARP),
    st.lists(st.sampled_from(SHARP) | st.text(anything, max_size=8), max_size=8).map("".join),
    long_text,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**53, 2**63, 2**64, 10**20]),
    st.floats(),  # NaN and the infinities too: json.dumps writes them, json.loads reads them
    hostile_text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)


def wrapped(depth: int, value: Any) -> Any:
    for i in range(depth):
        value = [value] if i % 2 else {"x": value}
    return value


deep = st.tuples(st.integers(min_value=28, max_value=36), json_values).map(lambda d: wrapped(*d))


@st.composite
def encoded(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> bytes:
    """JSON as a client may write it: ASCII with escapes, or UTF-8 as it stands (a lone
    surrogate then makes it invalid UTF-8)."""
    value = draw(values)
    if draw(st.booleans()):
        return json.dumps(value).encode()
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


arbitrary_bodies = st.one_of(encoded(json_values), encoded(deep), st.binary(max_size=64))


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON document, the root apart."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, inner in items:
        yield (*prefix, key)
        if isinstance(inner, dict | list) and inner:
            yield from paths(inner, (*prefix, key))


def at(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


def is_id(path: tuple[Any, ...]) -> bool:
    """Whether a place holds an id (kept in columns of limited length)."""
    return any(isinstance(k, str) and (k == "from" or k.endswith("id")) for k in path[-1:])


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """A realistic document with one to three things changed, each: a value replaced by
    arbitrary JSON, a text by hostile text or by one as long as a limit (an id more often
    than not), a key removed, a key added; or nothing."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        places = list(paths(doc))
        if not places:
            break
        strings = [p for p in places if isinstance(at(doc, p), str)]
        ids = [p for p in strings if is_id(p)]
        how = draw(st.sampled_from(["replace", "text", "long", "remove", "add", "none"]))
        if how == "long" and ids and draw(st.booleans()):
            path = draw(st.sampled_from(ids))
            at(doc, path[:-1])[path[-1]] = draw(long_text)
        elif how in ("text", "long") and strings:
            path = draw(st.sampled_from(strings))
            at(doc, path[:-1])[path[-1]] = draw(hostile_text if how == "text" else long_text)
        elif how in ("replace", "text", "long"):
            path = draw(st.sampled_from(places))
            at(doc, path[:-1])[path[-1]] = draw(json_values)
        elif how == "remove":
            path = draw(st.sampled_from(places))
            del at(doc, path[:-1])[path[-1]]
        elif how == "add":
            dicts = [()] + [p for p in places if isinstance(at(doc, p), dict)]
            at(doc, draw(st.sampled_from(dicts)))[draw(hostile_text)] = draw(json_values)
    return doc


# Residents: the one each example checks on, and others (negative ids: groups).
tg_users = st.one_of(
    st.just(SITI_TG),
    st.integers(min_value=1, max_value=2**40),
    st.sampled_from([7, 2**53, 2**63 - 1, -100123]),
)
tg_texts = st.one_of(
    st.sampled_from(
        [
            "halo",
            "jalan berlubang besar di Jl. Paus depan SD 12, Tangkerang Barat",
            "/start",
            "/lapor lampu jalan mati",
            "kebakaran tolong",
            "syarat bikin ktp el apa aja min?",
        ]
    ),
    hostile_text,
)
tg_names = st.fixed_dictionaries(
    {"first_name": st.sampled_from(["Siti", "Budi"]) | hostile_text},
    optional={"last_name": hostile_text, "language_code": st.sampled_from(["id", "en", "xx"])},
)


@st.composite
def tg_updates(draw: st.DrawFn) -> dict[str, Any]:
    """An update Telegram could send, from a resident the bot may know."""
    user = draw(tg_users)
    names = draw(tg_names)
    kind = draw(st.sampled_from(["text", "text", "location", "photo", "callback"]))
    if kind == "text":
        update = tg.text_update(user, draw(tg_texts), message_id=next_id(), **names)
    elif kind == "location":
        update = tg.location_update(user, 0.50713, 101.44775, message_id=next_id(), **names)
    elif kind == "photo":
        caption = draw(st.none() | tg_texts)
        update = tg.photo_update(user, caption=caption, message_id=next_id(), **names)
    else:
        data = draw(
            st.sampled_from(["photo:skip", "privacy:biasa", "confirm:send", "menu:lapor"])
            | hostile_text
        )
        update = tg.callback_update(user, data, next_id(), query_id=str(next_id()), **names)
    return {"update_id": next_id(), **update}


telegram_bodies = st.one_of(
    arbitrary_bodies,
    encoded(tg_updates().flatmap(mutated)),
    encoded(tg_updates().flatmap(mutated)),
    encoded(tg_updates().flatmap(mutated)),
)

wa_ids = st.one_of(st.just(SITI_WA), st.from_regex(r"628[0-9]{8,11}", fullmatch=True))
wa_contents = st.one_of(
    tg_texts.map(text),
    st.sampled_from(["photo:skip", "confirm:send", "menu:lapor"]).map(
        lambda p: button_reply(p, "Lewati")
    ),
    st.just(list_reply("privacy:biasa", "Biasa (nama tampil)")),
    st.just(template_button("rate:PKU-2026-000001:5", "⭐⭐⭐⭐⭐")),
    st.just(location(0.50713, 101.44775, "Jl. Paus", "Tangkerang Barat")),
    st.just(image("1029384756", "jalan rusak")),
)


@st.composite
def wa_payloads(draw: st.DrawFn, clock: Any) -> dict[str, Any]:
    """A webhook payload Meta could send: a resident's message, or a delivery status."""
    wa_id = draw(wa_ids)
    if draw(st.integers(0, 2)) == 0:
        status = draw(st.sampled_from(["sent", "delivered", "read", "failed"]))
        code = 131047 if status == "failed" else None
        return status_payload(
            wamid(), status, at=clock[0], wa_id=wa_id, user_id="ID.1", error_code=code
        )
    hidden = draw(st.integers(0, 5)) == 0  # a resident who hides their number
    return message_payload(
        draw(wa_contents),
        wamid=wamid(),
        at=clock[0],
        name=draw(st.sampled_from(["Siti", "Budi"]) | hostile_text),
        user_id="ID." + wa_id,
        wa_id=None if hidden else wa_id,
    )


# -- the property ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    with running(scale=1000) as server:
        yield server


@pytest.fixture
def hooks(assistant, fake, clock, tmp_path) -> Iterator[Hooks]:
    fake.state.reset()
    graph = FakeGraph(
        token=WA_TOKEN, clock=lambda: clock[0], pair_interval=PAIR_INTERVAL, pair_burst=4
    )
    graph.inbound = OpenWindow(graph)  # every resident of the fuzz has just written
    with Hooks(assistant, fake, graph, tmp_path / "media") as h:
        yield h


def check(hooks: Hooks, response: Any, greet: Callable[[], list[Any]], seen: Counter[int]) -> None:
    """The properties, after one generated body was posted."""
    seen[response.status_code] += 1
    with Failures() as failures:
        assert response.status_code in (200, 400, 413), (response.status_code, response.text)
        stored = hooks.inbox()
        if response.status_code != 200:
            assert stored == {}  # refused: nothing stored
        seen[STORED] += sum(stored.values())
        hooks.settle()
        assert hooks.inbox() == {}  # everything stored was handled, at the first try
        assert failures.messages() == []
        assert hooks.failed_outbox() == []
        assert greet() != []  # a resident the bot knows is still answered
        assert failures.messages() == []


def report(channel: str, seen: Counter[int], seconds: float) -> None:
    """How many examples ran, by answer, and how long they took (shown with -rP)."""
    stored = seen.pop(STORED, 0)
    answers = ", ".join(f"{n} x {status}" for status, n in sorted(seen.items()))
    print(
        f"{channel}: {seen.total()} examples ({answers}; {stored} updates stored and handled)"
        f" in {seconds:.1f} s"
    )


def test_fuzz_telegram_webhook(hooks):
    siti = TelegramUser(hooks, SITI_TG, first_name="Siti")

    def greet() -> list[Any]:
        siti.replies()
        siti.send("/start")
        return siti.replies()

    seen: Counter[int] = Counter()

    @fuzz
    @given(body=telegram_bodies)
    def example(body: bytes) -> None:
        check(hooks, hooks.telegram_raw(body), greet, seen)

    started = time.monotonic()
    example()
    report("telegram", seen, time.monotonic() - started)


def test_fuzz_whatsapp_webhook(hooks, clock):
    siti = WhatsAppUser(hooks, SITI_WA, user_id="ID." + SITI_WA)
    whatsapp_bodies = st.one_of(
        arbitrary_bodies,
        encoded(wa_payloads(clock).flatmap(mutated)),
        encoded(wa_payloads(clock).flatmap(mutated)),
        encoded(wa_payloads(clock).flatmap(mutated)),
    )

    def greet() -> list[Any]:
        siti.replies()
        siti.send(text("/start"))
        return siti.replies()

    seen: Counter[int] = Counter()

    @fuzz
    @given(body=whatsapp_bodies)
    def example(body: bytes) -> None:
        check(hooks, hooks.whatsapp_raw(body), greet, seen)

    started = time.monotonic()
    example()
    report("whatsapp", seen, time.monotonic() - started)
