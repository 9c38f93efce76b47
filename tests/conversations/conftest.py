"""The conversation fixtures of tests/bot (the real NLU, responses, FAQ, clock and assistant),
shared with the stories here, on SQLite and on PostgreSQL."""

from __future__ import annotations

from tests.bot.conftest import Chat, assistant, clock, faq, parser, responses

__all__ = ["Chat", "assistant", "clock", "faq", "parser", "responses"]
