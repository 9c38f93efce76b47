"""Conversation fixtures: the real NLU trained from data/, the real responses and FAQ."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

import nlu
from actions.city import LoadedCity
from actions.db import make_session_factory
from bot.app import build_faq, nlu_extra
from bot.channels.console import ConsoleChat
from bot.conversation import Assistant
from bot.faq import FaqIndex
from bot.responses import Responses

DATA = Path(__file__).resolve().parents[2] / "data"
# Monday 30 November 2026, 10:00 in Pekanbaru.
NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def parser(tmp_path_factory: pytest.TempPathFactory, city: LoadedCity) -> nlu.Parser:
    return nlu.load(
        DATA / "nlu.yml",
        extra=nlu_extra(DATA),
        places=city.places(),
        ticket_prefix=city.config.ticket_prefix,
        cache_dir=tmp_path_factory.mktemp("nlu"),
        lexicon_dir=DATA / "lexicon",
        year=lambda: 2026,
    )


@pytest.fixture(scope="session")
def responses() -> Responses:
    return Responses.load(DATA / "responses")


@pytest.fixture(scope="session")
def faq(city: LoadedCity) -> FaqIndex:
    return build_faq(DATA, city)


@pytest.fixture
def clock() -> list[datetime]:
    """The time the bot sees; a test may move it on."""
    return [NOW]


@pytest.fixture
def assistant(
    loaded: Engine, city: LoadedCity, parser, responses: Responses, faq: FaqIndex, clock
) -> Assistant:
    return Assistant(
        city=city,
        nlu=parser,
        responses=responses,
        faq=faq,
        sessions=make_session_factory(loaded),
        clock=lambda: clock[0],
    )


class Chat:
    """A resident in the terminal chat, fed one line at a time; returns what was printed."""

    def __init__(self, assistant: Assistant, user_id: str, name: str) -> None:
        self.out = io.StringIO()
        self.console = ConsoleChat(assistant, user_id=user_id, display_name=name, out=self.out)
        self.t = assistant.responses.get

    def __call__(self, line: str) -> str:
        start = self.out.tell()
        self.console.say(line)
        return self.out.getvalue()[start:]


@pytest.fixture
def chat(assistant: Assistant) -> Callable[..., Chat]:
    def make(user_id: str = "siti", name: str = "Siti") -> Chat:
        return Chat(assistant, user_id, name)

    return make
