"""Conversations as data: every story of tests/conversations/*.yml, turn by turn, on SQLite
and on PostgreSQL, through the terminal chat (bot.channels.console.ConsoleChat).

A file is a YAML list of stories:

    - story: "gak" at the photo step skips the photo, it does not cancel
      lang: id                      # optional: the language of `says` keys (id, en); default id
      officers:                     # optional: officers of the story, by name
        budi: {agency: PUPR}        #   role: officer (default), supervisor or admin (agency null)
      steps:
        - user: jalan di jl. arifin ahmad dpn kantor gubernur byk lubang kel sidomulyo timur
          state: report.photo
        - user: gak
          says: report.ask_privacy

What a step does (one of these, or `restart` together with `user`):
  user: TEXT        a line typed in the terminal chat (`/foto NAME caption`, `/lokasi LAT,LON`,
                    a button's number or label, a /command). `{ticket}` in it is the number of
                    the newest ticket in the database, `{ticket1}`, `{ticket2}`, … the first,
                    second, … ticket.
  as: NAME          who types: an officer of the header, or any other name (another resident).
                    Default: the story's resident, `warga` (display name Siti).
  restart: true     the speaker's terminal is started anew (a new ConsoleChat, nothing in
                    memory: the buttons printed before are gone, the state is the database's).
  wait: "3 days"    the bot's clock moves on (N minutes|hours|days).
  resolve: true     an officer of the ticket's agency resolves the newest ticket of `of`
                    (default warga) through actions.desk (the note may be given instead of
                    true); then the resident's terminal delivers what was sent to them (the
                    rating prompt): that is the step's reply.

What must hold after the step (every check of a step is tested; all failures are reported):
  state: NAME       the speaker's stored conversation state (table `conversation`), `idle` when
                    there is no row; a list means any of them.
  says: KEY|[KEYS]  the reply contains the fixed part of each response text of
                    data/responses/<lang>.yml: the longest literal piece of its first non-empty
                    line, placeholders ({...}) cut out (report.ask_privacy -> "Boleh
                    dipublikasikan?", status.not_found -> " tidak ada di daftar laporan Anda…").
  not_says: KEY|[KEYS]  the reply contains none of them.
  contains: W|[W]   the reply contains each (case-insensitive); not_contains: none of them.
  ticket: {...}     the newest ticket of `of` (default: the speaker, or warga when an officer
                    speaks) has these: count (tickets in the whole database), kind, category
                    (code), agency (code), kelurahan (name, null for none), privacy, status,
                    photos (how many), number, followers (how many), description / location
                    (each a piece of the text, case-insensitive); a list of values means any
                    of them (status: [resolved, closed]).
  no_ticket: true   `of` (as for ticket) has reported no ticket.
  tickets: N        the database holds N tickets in all.
  follows: [NAMES]  the announcements `of` (as for ticket) follows, by area or group name, in
                    any order ([] for none).
"""

from __future__ import annotations

import asyncio
import io
import re
import string
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from actions import broadcasts, desk
from actions.domain import OfficerRole
from actions.models import Conversation, Resident, Ticket, TicketFollower
from actions.people import add_officer
from actions.tickets import Action
from bot.channels.console import CHANNEL, ConsoleChat

HERE = Path(__file__).resolve().parent
MAIN = "warga"
MAIN_NAME = "Siti"

STORY_KEYS = {"story", "steps", "officers", "lang"}
ACTION_KEYS = {"user", "as", "restart", "wait", "resolve", "of"}
CHECK_KEYS = {
    "state",
    "says",
    "not_says",
    "contains",
    "not_contains",
    "ticket",
    "no_ticket",
    "tickets",
    "follows",
    "lang",
}
TICKET_KEYS = {
    "count",
    "kind",
    "category",
    "agency",
    "kelurahan",
    "privacy",
    "status",
    "photos",
    "number",
    "followers",
    "description",
    "location",
}
_WAIT = re.compile(r"^\s*(\d+)\s*(minute|minutes|menit|hour|hours|jam|day|days|hari)\s*$", re.I)


class _Loader(yaml.SafeLoader):
    """YAML without the 1.1 booleans: `user: no`, `user: yes`, `user: ok`, `user: y` stay text
    (only true/false are booleans)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass
class Story:
    file: str
    index: int
    name: str
    steps: list[dict[str, Any]]
    officers: dict[str, dict[str, Any]] = field(default_factory=dict)
    lang: str = "id"

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")[:60]
        return f"{self.file}:{self.index:03d}-{slug}"


class StoryError(Exception):
    """A story that is not well formed (never a test that passes for nothing)."""


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def check_story(story: Story) -> None:
    if not story.steps:
        raise StoryError(f"{story.id}: no steps")
    checked = False
    for n, step in enumerate(story.steps, 1):
        if not isinstance(step, dict):
            raise StoryError(f"{story.id} step {n}: a step is a mapping")
        unknown = set(step) - ACTION_KEYS - CHECK_KEYS
        if unknown:
            raise StoryError(f"{story.id} step {n}: unknown keys {sorted(unknown)}")
        actions = [k for k in ("user", "wait", "resolve") if k in step]
        if len(actions) > 1 or (not actions and not step.get("restart")):
            raise StoryError(f"{story.id} step {n}: one of user / wait / resolve / restart")
        if "user" in step and not isinstance(step["user"], str):
            raise StoryError(f"{story.id} step {n}: quote the line {step['user']!r}")
        if "wait" in step and not _WAIT.match(str(step["wait"])):
            raise StoryError(f"{story.id} step {n}: wait like '3 days', not {step['wait']!r}")
        if "ticket" in step:
            if not isinstance(step["ticket"], dict) or set(step["ticket"]) - TICKET_KEYS:
                raise StoryError(f"{story.id} step {n}: ticket keys are {sorted(TICKET_KEYS)}")
        checked = checked or bool(set(step) & CHECK_KEYS - {"lang"})
    if not checked:
        raise StoryError(f"{story.id}: checks nothing")
    for name, spec in story.officers.items():
        if set(spec or {}) - {"agency", "role"}:
            raise StoryError(f"{story.id}: officer {name}: only agency and role")


def load_stories() -> list[Story]:
    stories: list[Story] = []
    for path in sorted(HERE.glob("*.yml")):
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader) or []  # noqa: S506
        if not isinstance(raw, list):
            raise StoryError(f"{path.name}: a list of stories")
        for i, item in enumerate(raw, 1):
            if not isinstance(item, dict) or set(item) - STORY_KEYS or "story" not in item:
                raise StoryError(f"{path.name} #{i}: keys are {sorted(STORY_KEYS)}")
            stories.append(
                Story(
                    file=path.stem,
                    index=i,
                    name=str(item["story"]),
                    steps=item.get("steps") or [],
                    officers=item.get("officers") or {},
                    lang=item.get("lang", "id"),
                )
            )
    return stories


STORIES = load_stories()


def fixed_part(template: str) -> str:
    """The longest literal piece of the first non-empty line of a response text."""
    line = next((ln for ln in template.splitlines() if ln.strip()), "")
    pieces = [literal for literal, _, _, _ in string.Formatter().parse(line)]
    return max((p.strip() for p in pieces), key=len, default="")


class Run:
    """One story being played: the terminals, the database, the transcript."""

    def __init__(self, story: Story, assistant, clock) -> None:
        self.story, self.assistant, self.clock = story, assistant, clock
        self.terminals: dict[str, tuple[ConsoleChat, io.StringIO]] = {}
        self.transcript: list[str] = []
        with assistant.sessions.begin() as s:
            for name, spec in story.officers.items():
                spec = spec or {}
                add_officer(
                    s,
                    channel=CHANNEL,
                    platform_user_id=name,
                    role=OfficerRole(spec.get("role", "officer")),
                    agency_code=spec.get("agency"),
                    display_name=name.capitalize(),
                )

    # -- terminals ---------------------------------------------------------------------------

    def terminal(self, who: str, *, fresh: bool = False) -> tuple[ConsoleChat, io.StringIO]:
        if fresh or who not in self.terminals:
            out = io.StringIO()
            name = MAIN_NAME if who == MAIN else who.capitalize()
            console = ConsoleChat(self.assistant, user_id=who, display_name=name, out=out)
            self.terminals[who] = (console, out)
        return self.terminals[who]

    def type(self, who: str, line: str) -> str:
        console, out = self.terminal(who)
        start = out.tell()
        console.say(line)
        return out.getvalue()[start:]

    def deliver(self, who: str) -> str:
        console, out = self.terminal(who)
        start = out.tell()
        asyncio.run(console._deliver())
        return out.getvalue()[start:]

    # -- the database ------------------------------------------------------------------------

    def tickets(self) -> list[Ticket]:
        with self.assistant.sessions() as s:
            rows = s.scalars(
                select(Ticket)
                .order_by(Ticket.id)
                .options(
                    selectinload(Ticket.category),
                    selectinload(Ticket.agency),
                    selectinload(Ticket.area),
                    selectinload(Ticket.photos),
                    selectinload(Ticket.reporter),
                )
            ).all()
            s.expunge_all()
            return list(rows)

    def fill(self, line: str) -> str:
        numbers = [t.number for t in self.tickets()]
        values = {f"ticket{i}": n for i, n in enumerate(numbers, 1)}
        values["ticket"] = numbers[-1] if numbers else "PKU-2026-000000"
        return re.sub(r"\{(ticket\d*)\}", lambda m: values.get(m[1], m[0]), line)

    def state(self, who: str) -> tuple[str, dict[str, Any]]:
        with self.assistant.sessions() as s:
            row = s.execute(
                select(Conversation.state, Conversation.data)
                .join(Resident, Resident.id == Conversation.resident_id)
                .where(Resident.channel == CHANNEL, Resident.platform_user_id == who)
            ).first()
        return (row.state, row.data or {}) if row is not None else ("idle", {})

    def latest(self, who: str) -> Ticket | None:
        mine = [t for t in self.tickets() if t.reporter.platform_user_id == who]
        return mine[-1] if mine else None

    def followers(self, ticket: Ticket) -> int:
        with self.assistant.sessions() as s:
            return s.scalar(
                select(func.count())
                .select_from(TicketFollower)
                .where(TicketFollower.ticket_id == ticket.id)
            )

    def is_officer(self, who: str) -> bool:
        return who in self.story.officers

    # -- steps -------------------------------------------------------------------------------

    def act(self, step: dict[str, Any]) -> str:
        who = step.get("as", MAIN)
        if step.get("restart"):
            self.terminal(who, fresh=True)
        if "wait" in step:
            m = _WAIT.match(str(step["wait"]))
            unit = m[2].lower().rstrip("s")
            minutes = {"minute": 1, "menit": 1, "hour": 60, "jam": 60, "day": 1440, "hari": 1440}
            delta = timedelta(minutes=int(m[1]) * minutes[unit])
            self.clock[0] += delta
            return ""
        if "resolve" in step:
            return self.resolve(step.get("of", MAIN), step["resolve"])
        if "user" in step:
            return self.type(who, self.fill(str(step["user"])))
        return ""

    def resolve(self, whose: str, note: Any) -> str:
        ticket = self.latest(whose)
        assert ticket is not None, f"resolve: {whose} has no ticket to resolve"
        text = note if isinstance(note, str) else "sudah diperbaiki petugas di lapangan"
        with self.assistant.sessions.begin() as s:
            agency = ticket.agency.code
            officer = add_officer(
                s,
                channel=CHANNEL,
                platform_user_id=f"kepala-{agency.lower()}",
                role=OfficerRole.SUPERVISOR,
                agency_code=agency,
                display_name=f"Kepala {agency}",
            )
            t = desk.ticket_for(s, officer=officer, number=ticket.number)
            desk.act(
                s, officer=officer, ticket=t, action=Action.RESOLVE, note=text, now=self.clock[0]
            )
        return self.deliver(whose)

    def check(self, step: dict[str, Any], reply: str) -> list[str]:
        who = step.get("as", MAIN)
        lang = step.get("lang", self.story.lang)
        t = self.assistant.responses.get
        problems: list[str] = []
        low = reply.casefold()
        if "state" in step:
            state, _ = self.state(who)
            if state not in [str(s) for s in _as_list(step["state"])]:
                problems.append(f"state is {state!r}, expected {step['state']!r}")
        for key in _as_list(step.get("says", [])):
            piece = fixed_part(t(lang, key))
            if piece not in reply:
                problems.append(f"says {key}: {piece!r} is not in the reply")
        for key in _as_list(step.get("not_says", [])):
            piece = fixed_part(t(lang, key))
            if piece in reply:
                problems.append(f"not_says {key}: {piece!r} is in the reply")
        for word in _as_list(step.get("contains", [])):
            if str(word).casefold() not in low:
                problems.append(f"contains {word!r}: not in the reply")
        for word in _as_list(step.get("not_contains", [])):
            if str(word).casefold() in low:
                problems.append(f"not_contains {word!r}: it is in the reply")
        if "tickets" in step:
            count = len(self.tickets())
            if count != step["tickets"]:
                problems.append(f"tickets: {count} in the database, expected {step['tickets']}")
        subject = step.get("of", MAIN if self.is_officer(who) else who)
        if step.get("no_ticket"):
            ticket = self.latest(subject)
            if ticket is not None:
                problems.append(f"no_ticket: {subject} has {self.describe(ticket)}")
        if "ticket" in step:
            problems += self.check_ticket(subject, step["ticket"])
        if "follows" in step:
            names = sorted(self.follows(subject))
            if names != sorted(_as_list(step["follows"])):
                problems.append(f"follows: {subject} follows {names}, expected {step['follows']}")
        return problems

    def follows(self, who: str) -> list[str]:
        with self.assistant.sessions() as s:
            rid = s.scalar(
                select(Resident.id).where(
                    Resident.channel == CHANNEL, Resident.platform_user_id == who
                )
            )
            return [f.name for f in broadcasts.follows_of(s, rid)] if rid else []

    def check_ticket(self, who: str, want: dict[str, Any]) -> list[str]:
        ticket = self.latest(who)
        if ticket is None:
            return [f"ticket: {who} has no ticket (expected {want})"]
        have: dict[str, Any] = {
            "count": len(self.tickets()),
            "kind": ticket.kind.value,
            "category": ticket.category.code,
            "agency": ticket.agency.code if ticket.agency else None,
            "kelurahan": ticket.area.name if ticket.area else None,
            "privacy": ticket.privacy.value,
            "status": ticket.status.value,
            "photos": len(ticket.photos),
            "number": ticket.number,
        }
        problems = []
        for key, expected in want.items():
            if key == "followers":
                got: Any = self.followers(ticket)
                ok = got == expected
            elif key in ("description", "location"):
                got = ticket.description if key == "description" else ticket.location_text
                ok = str(expected).casefold() in (got or "").casefold()
            else:
                got = have[key]
                ok = any(
                    got == one
                    or (
                        isinstance(got, str)
                        and isinstance(one, str)
                        and got.casefold() == one.casefold()
                    )
                    for one in _as_list(expected)
                )
            if not ok:
                problems.append(f"ticket.{key} is {got!r}, expected {expected!r}")
        return problems

    def describe(self, ticket: Ticket | None) -> str:
        if ticket is None:
            return "none"
        return (
            f"{ticket.number} {ticket.kind.value}/{ticket.category.code} → "
            f"{ticket.agency.code if ticket.agency else '-'}, "
            f"kelurahan {ticket.area.name if ticket.area else '-'}, {ticket.privacy.value}, "
            f"{ticket.status.value}, {len(ticket.photos)} photo(s), "
            f"place {ticket.location_text!r}, description {ticket.description!r}"
        )


def _indent(text: str, prefix: str = "    | ") -> str:
    lines = text.rstrip("\n").splitlines() or ["(nothing)"]
    return "\n".join(prefix + line for line in lines)


def play(story: Story, assistant, clock) -> None:
    """Play a story step by step; fail at the first step whose checks do not hold."""
    check_story(story)
    run = Run(story, assistant, clock)
    for n, step in enumerate(story.steps, 1):
        who = step.get("as", MAIN)
        what = (
            f"user {step['user']!r}"
            if "user" in step
            else f"wait {step['wait']}"
            if "wait" in step
            else f"resolve ({step.get('of', MAIN)}'s newest ticket)"
            if "resolve" in step
            else "restart"
        )
        if step.get("restart") and "user" in step:
            what = "restart, then " + what
        reply = run.act(step)
        run.transcript.append(f"  {n:>2} {who}> {what}\n{_indent(reply, '       | ')}")
        problems = run.check(step, reply)
        if problems:
            state, data = run.state(who)
            subject = step.get("of", MAIN if run.is_officer(who) else who)
            pytest.fail(
                f"\nstory: {story.name}\n"
                f"file:  tests/conversations/{story.file}.yml (story #{story.index})\n"
                f"step {n} of {len(story.steps)}, as {who}: {what}\n"
                + "".join(f"  ✗ {p}\n" for p in problems)
                + f"reply:\n{_indent(reply)}\n"
                f"state of {who}: {state}  data: {data}\n"
                f"newest ticket of {subject}: {run.describe(run.latest(subject))}\n"
                f"tickets in the database: {len(run.tickets())}\n"
                f"transcript so far:\n" + "\n".join(run.transcript[:-1] or ["  (first step)"]),
                pytrace=False,
            )


@pytest.mark.parametrize("story", STORIES, ids=[s.id for s in STORIES])
def test_story(story: Story, assistant, clock) -> None:
    play(story, assistant, clock)


def test_a_story_that_does_not_hold_fails_and_says_where(assistant, clock) -> None:
    """The runner can fail: a wrong expectation stops at its step with all it needs to read."""
    wrong = Story(
        file="(inline)",
        index=1,
        name="a pothole report is not asked for a photo",
        steps=[
            {
                "user": "jalan di jl. arifin ahmad dpn kantor gubernur byk lubang kel sidomulyo",
                "state": "report.privacy",
                "says": "report.ask_privacy",
                "contains": "zebra",
                "ticket": {"count": 1},
            },
            {"user": "lewati", "state": "report.privacy"},
        ],
    )
    with pytest.raises(pytest.fail.Exception) as failed:
        play(wrong, assistant, clock)
    message = str(failed.value)
    for part in (
        "story: a pothole report is not asked for a photo",
        "step 1 of 2, as warga: user 'jalan di jl. arifin ahmad dpn kantor",
        "state is 'report.photo', expected 'report.privacy'",
        "says report.ask_privacy: 'Boleh dipublikasikan?' is not in the reply",
        "contains 'zebra': not in the reply",
        "ticket: warga has no ticket",
        "| Ada foto?",
        "state of warga: report.photo",
    ):
        assert part in message, (part, message)


def test_every_story_is_well_formed(responses) -> None:
    """Typos in a story's keys or response keys fail here at once, before any database."""
    names: set[str] = set()
    for story in STORIES:
        check_story(story)
        for n, step in enumerate(story.steps, 1):
            lang = step.get("lang", story.lang)
            for key in _as_list(step.get("says", [])) + _as_list(step.get("not_says", [])):
                piece = fixed_part(responses.get(lang, key))
                assert len(piece) >= 8, f"{story.id} step {n}: {key} has no fixed text to check"
        assert story.name not in names, f"two stories are called {story.name!r}"
        names.add(story.name)
    assert len(STORIES) >= 220, len(STORIES)


def test_fixed_part_is_a_piece_of_the_text_without_placeholders() -> None:
    assert fixed_part("Laporan {number} tidak ada di daftar laporan Anda.") == (
        "tidak ada di daftar laporan Anda."
    )
    assert fixed_part("\nBoleh dipublikasikan?\n• Biasa") == "Boleh dipublikasikan?"
