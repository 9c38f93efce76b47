"""Build the running bot from the settings: store, city, NLU, responses, FAQ."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from actions import migrate
from actions.city import LoadedCity, city_file_path, load_city_file, sync_city
from actions.db import make_engine, make_session_factory
from actions.settings import Settings
from bot.answers import Answers
from bot.conversation import Assistant, Understanding
from bot.faq import FaqIndex
from bot.open311 import Open311Context
from bot.responses import Responses

log = logging.getLogger(__name__)

# Words too common to tell one question from another.
_STOPWORDS = frozenset(
    "yang di ke dari dan atau untuk dengan ini itu apa saja ada mau bisa saya kami kita aku "
    "gimana bagaimana cara kalau kalo kak min admin pak bu ya dong nya tidak sudah belum juga "
    "the a an to of for in on is are do does how what i my can".split()
)


@dataclass
class Runtime:
    """The parts of a running deployment, each built on first use."""

    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        return make_engine(
            self.settings.effective_database_url, timeout=self.settings.warga_db_timeout
        )

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @cached_property
    def city(self) -> LoadedCity:
        return load_city_file(
            city_file_path(self.settings.warga_data_dir, self.settings.warga_city)
        )

    @cached_property
    def responses(self) -> Responses:
        return Responses.load(self.settings.warga_data_dir / "responses")

    @cached_property
    def nlu(self) -> Understanding:
        import nlu

        started = time.perf_counter()
        parser = nlu.load(
            self.settings.warga_data_dir / "nlu.yml",
            extra=nlu_extra(self.settings.warga_data_dir),
            places=self.city.places(),
            ticket_prefix=self.city.config.ticket_prefix,
            cache_dir=self.settings.warga_var_dir / "nlu",
            lexicon_dir=self.settings.warga_data_dir / "lexicon",
        )
        log.info("NLU ready in %.1f s", time.perf_counter() - started)
        backend = self.settings.nlu_backend
        if backend != "builtin":
            import httpx

            from bot.rasa_backend import RasaUnderstanding

            return RasaUnderstanding(backend, parser, httpx.Client(timeout=5.0))
        return parser

    @cached_property
    def faq(self) -> FaqIndex:
        return build_faq(self.settings.warga_data_dir, self.city)

    @cached_property
    def assistant(self) -> Assistant:
        return Assistant(
            city=self.city,
            nlu=self.nlu,
            responses=self.responses,
            faq=self.faq,
            sessions=self.sessions,
            answers=Answers.load(self.settings.warga_data_dir / "answers.yml"),
        )

    @cached_property
    def open311(self) -> Open311Context:
        """The Open311 API and hand-overs; agencies' secrets come from the environment."""
        import os

        from actions.open311 import agency_links

        return Open311Context(
            self.sessions,
            self.city,
            self.responses,
            links=agency_links(self.city.config, os.environ),
        )

    def prepare_database(self) -> None:
        """Migrate the schema and load the city file (both idempotent)."""
        migrate.upgrade(self.engine)
        with self.sessions.begin() as session:
            sync_city(session, city=self.city)


# Training data beside data/nlu.yml: real LAPOR! reports labelled by hand (data/lapor/README.md).
NLU_EXTRA = ("lapor/train.yml",)


def nlu_extra(data_dir: Path) -> list[Path]:
    """The further NLU training files that the data folder holds."""
    return [data_dir / name for name in NLU_EXTRA if (data_dir / name).is_file()]


def build_faq(data_dir: Path, city: LoadedCity) -> FaqIndex:
    """Load data/faq.yml, matching words after the NLU's informal-Indonesian normalisation."""
    from nlu.normalize import Normalizer, load_lexicon

    normalizer = Normalizer(load_lexicon(data_dir / "lexicon"))

    def words(text: str) -> list[str]:
        return [
            w for w in normalizer.normalize_tokens(text) if w.isalnum() and w not in _STOPWORDS
        ]

    return FaqIndex.load(
        data_dir / "faq.yml",
        words,
        categories=set(city.config.categories),
        agencies={a.code for a in city.config.agencies},
    )
