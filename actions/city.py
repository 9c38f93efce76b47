"""The city file: load and validate `data/cities/<city>.yml`, and copy it into the store."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.domain import AreaLevel, SendMethod, TicketKind
from actions.models import Agency, Area, Category, City, RoutingRule

Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 ()-]{1,30}$")]


class CityFileError(Exception):
    """A city file that cannot be used; the message names the file, the key and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmergencyNumber(_Strict):
    name: str
    number: Phone
    note: str = ""


# ---------------------------------------------------------------- Open311: agencies' systems

EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$")]
Url = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^https?://[^\s]+$")]


class BackendConfig(_Strict):
    """An agency's own system: how routed tickets reach it and how its updates come back.

    Secrets are never in the file: it names the environment variables that hold them.
    """

    send_method: SendMethod = SendMethod.NONE
    endpoint: Url | None = None  # the GeoReport v2 root (…/open311/v2), or the webhook URL
    jurisdiction_id: str = ""
    api_key_env: EnvName | None = None  # open311: the api_key their server gave us
    webhook_secret_env: EnvName | None = None  # HMAC-SHA256 key of webhooks, both ways
    service_codes: dict[Code, str] = Field(default_factory=dict)  # our category -> theirs
    poll_seconds: int = Field(default=300, ge=0)  # open311: read their updates; 0: never

    @model_validator(mode="after")
    def _complete(self) -> BackendConfig:
        if self.send_method is SendMethod.NONE:
            return self
        if self.endpoint is None:
            raise ValueError(f"send_method {self.send_method.value} needs an endpoint")
        if self.send_method is SendMethod.OPEN311 and self.api_key_env is None:
            raise ValueError("send_method open311 needs api_key_env")
        if self.send_method is SendMethod.WEBHOOK and self.webhook_secret_env is None:
            raise ValueError("send_method webhook needs webhook_secret_env")
        return self


class Open311Config(_Strict):
    """Our own GeoReport v2 API."""

    jurisdiction_id: Annotated[str, StringConstraints(min_length=1, max_length=120)]


# ---------------------------------------------------------------- end of Open311


class AgencyConfig(_Strict):
    code: Code
    name: str
    short_name: str
    contact: dict[str, str] = Field(default_factory=dict)
    telegram_chat_id: int | None = None
    backend: BackendConfig = Field(default_factory=BackendConfig)


class CategoryConfig(_Strict):
    name: str
    description: str = ""


class CategoryRoute(_Strict):
    default: Code
    kecamatan: dict[str, Code] = Field(default_factory=dict)


class RoutingConfig(_Strict):
    fallback: Code
    categories: dict[Code, Code | CategoryRoute]


class SlaTarget(_Strict):
    first_response: int = Field(ge=0, le=365)
    resolution: int = Field(ge=0, le=365)


class SlaOverride(_Strict):
    first_response: int | None = Field(default=None, ge=0, le=365)
    resolution: int | None = Field(default=None, ge=0, le=365)


class SlaConfig(_Strict):
    default: dict[TicketKind, SlaTarget]
    categories: dict[Code, dict[TicketKind, SlaOverride]] = Field(default_factory=dict)


class HolidayConfig(_Strict):
    date: date
    name: str


class WilayahConfig(_Strict):
    file: str
    # GeoJSON outlines of the kelurahan (and kecamatan), codes as in `file`: a pin -> its
    # kelurahan (actions/geo.py). Optional: without it a pin gives no kelurahan.
    boundaries: str | None = None
    aliases: dict[AreaLevel, dict[str, list[str]]] = Field(default_factory=dict)


# -- WhatsApp: the approved message templates of the city's business number ------------------

TemplateName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,512}$")]
LanguageCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")]
OutboxTemplate = Annotated[str, StringConstraints(pattern=r"^[a-z_]+(\.[a-z_]+)+$")]


class WhatsAppTemplate(_Strict):
    """An approved template an outbox message goes out as outside WhatsApp's 24-hour window."""

    name: TemplateName
    # Our language -> the template's language code; default: the whatsapp.languages map.
    languages: dict[str, LanguageCode] = Field(default_factory=dict)
    # The outbox message's parameters that fill the body's {{1}}, {{2}}, … in order.
    params: list[Code] = Field(default_factory=list)
    # How many quick-reply buttons the template has; their payloads are the message's buttons.
    quick_replies: int = Field(default=0, ge=0, le=10)


class WhatsAppTemplates(_Strict):
    """The approved templates of the city's WhatsApp number, and their languages."""

    languages: dict[str, LanguageCode] = Field(default_factory=lambda: {"id": "id", "en": "en"})
    templates: dict[OutboxTemplate, WhatsAppTemplate] = Field(default_factory=dict)

    def template_for(self, outbox_template: str, language: str) -> tuple[WhatsAppTemplate, str]:
        """Return the approved template and its language code; KeyError when none is set."""
        template = self.templates[outbox_template]
        codes = {**self.languages, **template.languages}
        return template, codes.get(language) or codes["id"]


class CityConfig(_Strict):
    code: Code
    name: str
    province: str
    area_code: Code
    ticket_prefix: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2,8}$")]
    timezone: str
    reopen_days: int = Field(default=14, ge=0)
    emergency: list[EmergencyNumber] = Field(min_length=1)
    agencies: list[AgencyConfig] = Field(min_length=1)
    categories: dict[Code, CategoryConfig] = Field(min_length=1)
    routing: RoutingConfig
    sla: SlaConfig
    holidays: list[HolidayConfig] = Field(default_factory=list)
    wilayah: WilayahConfig
    whatsapp: WhatsAppTemplates = Field(default_factory=WhatsAppTemplates)
    open311: Open311Config | None = None

    @property
    def jurisdiction_id(self) -> str:
        """Return the Open311 jurisdiction_id of this city (its code unless the file says)."""
        return self.open311.jurisdiction_id if self.open311 is not None else self.code

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def holiday_dates(self) -> frozenset[date]:
        return frozenset(h.date for h in self.holidays)

    def sla_for(self, kind: TicketKind, category: str) -> SlaTarget:
        """Return the working-day targets for a kind of ticket in a category."""
        base = self.sla.default[kind]
        override = self.sla.categories.get(category, {}).get(kind)
        if override is None:
            return base
        return SlaTarget(
            first_response=override.first_response
            if override.first_response is not None
            else base.first_response,
            resolution=override.resolution if override.resolution is not None else base.resolution,
        )


@dataclass(frozen=True)
class WilayahRow:
    kode_kecamatan: str
    kecamatan: str
    kode_kelurahan: str
    kelurahan: str


@dataclass(frozen=True)
class LoadedCity:
    """A validated city file with its wilayah read."""

    path: Path
    config: CityConfig
    wilayah: tuple[WilayahRow, ...]
    boundaries_path: Path | None = None

    def places(self) -> dict[str, dict[str, list[str]]]:
        """Return kecamatan and kelurahan names with their aliases, as the NLU takes them."""
        aliases = self.config.wilayah.aliases
        out: dict[str, dict[str, list[str]]] = {"kecamatan": {}, "kelurahan": {}}
        for row in self.wilayah:
            for level, name in (("kecamatan", row.kecamatan), ("kelurahan", row.kelurahan)):
                out[level].setdefault(name, list(aliases.get(AreaLevel(level), {}).get(name, [])))
        return out


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def load_city_file(path: Path) -> LoadedCity:
    """Read, validate and cross-check a city file.

    Raise CityFileError naming the file, the key and the problem.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CityFileError(f"{path}: no such city file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CityFileError(f"{path}:{line}: not valid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise CityFileError(f"{path}: (top level): expected a mapping of keys, got {raw!r:.40}")
    try:
        config = CityConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise CityFileError(f"{path}: {_where(first['loc'])}: {first['msg']}{more}") from None
    wilayah = _read_wilayah(path, config)
    _cross_check(path, config, wilayah)
    boundaries = None
    if config.wilayah.boundaries is not None:
        boundaries = (path.parent / config.wilayah.boundaries).resolve()
        if not boundaries.is_file():
            raise CityFileError(f"{path}: wilayah.boundaries: no such file {boundaries}")
    return LoadedCity(path=path, config=config, wilayah=wilayah, boundaries_path=boundaries)


def _read_wilayah(path: Path, config: CityConfig) -> tuple[WilayahRow, ...]:
    csv_path = (path.parent / config.wilayah.file).resolve()
    try:
        with csv_path.open(encoding="utf-8", newline="") as fh:
            rows = [WilayahRow(**{k: v.strip() for k, v in r.items()}) for r in csv.DictReader(fh)]
    except FileNotFoundError:
        raise CityFileError(f"{path}: wilayah.file: no such file {csv_path}") from None
    except TypeError:
        raise CityFileError(
            f"{path}: wilayah.file: {csv_path} needs the columns "
            "kode_kecamatan,kecamatan,kode_kelurahan,kelurahan"
        ) from None
    if not rows:
        raise CityFileError(f"{path}: wilayah.file: {csv_path} has no rows")
    for i, row in enumerate(rows, start=2):
        if not row.kode_kelurahan.startswith(row.kode_kecamatan + "."):
            raise CityFileError(
                f"{path}: wilayah.file: {csv_path.name} line {i}: kelurahan code "
                f"{row.kode_kelurahan} is not inside kecamatan {row.kode_kecamatan}"
            )
        if not row.kode_kecamatan.startswith(config.area_code + "."):
            raise CityFileError(
                f"{path}: wilayah.file: {csv_path.name} line {i}: kecamatan code "
                f"{row.kode_kecamatan} is not inside the city's area_code {config.area_code}"
            )
    return tuple(rows)


def _cross_check(path: Path, config: CityConfig, wilayah: tuple[WilayahRow, ...]) -> None:
    def fail(key: str, problem: str) -> CityFileError:
        return CityFileError(f"{path}: {key}: {problem}")

    try:
        ZoneInfo(config.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise fail("timezone", f"unknown time zone {config.timezone!r}") from None
    agencies = [a.code for a in config.agencies]
    duplicates = sorted({c for c in agencies if agencies.count(c) > 1})
    if duplicates:
        raise fail("agencies", f"agency code {duplicates[0]!r} appears twice")
    known = set(agencies)

    def check_agency(key: str, code: str) -> None:
        if code not in known:
            raise fail(key, f"unknown agency {code!r} (known: {', '.join(sorted(known))})")

    check_agency("routing.fallback", config.routing.fallback)
    kecamatan = {row.kecamatan for row in wilayah}
    for category, route in config.routing.categories.items():
        key = f"routing.categories.{category}"
        if category not in config.categories:
            raise fail(key, f"unknown category {category!r}")
        if isinstance(route, str):
            check_agency(key, route)
            continue
        check_agency(f"{key}.default", route.default)
        for name, code in route.kecamatan.items():
            if name not in kecamatan:
                raise fail(f"{key}.kecamatan.{name}", f"no kecamatan {name!r} in the wilayah")
            check_agency(f"{key}.kecamatan.{name}", code)
    for category in config.sla.categories:
        if category not in config.categories:
            raise fail(f"sla.categories.{category}", f"unknown category {category!r}")
    for i, ac in enumerate(config.agencies):
        for category in ac.backend.service_codes:
            if category not in config.categories:
                key = f"agencies.{i}.backend.service_codes.{category}"
                raise fail(key, f"unknown category {category!r}")
    missing = [k for k in TicketKind if k not in config.sla.default]
    if missing:
        raise fail("sla.default", f"no target for kind {missing[0].value!r}")
    if config.emergency[0].number != "112":
        raise fail("emergency", "the first emergency number must be 112")
    for key, template in config.whatsapp.templates.items():
        codes = {**config.whatsapp.languages, **template.languages}
        if "id" not in codes:
            raise fail(f"whatsapp.templates.{key}.languages", "no language code for 'id'")
    names = {AreaLevel.KECAMATAN: kecamatan, AreaLevel.KELURAHAN: {r.kelurahan for r in wilayah}}
    for level, table in config.wilayah.aliases.items():
        for name in table:
            if name not in names.get(level, set()):
                raise fail(f"wilayah.aliases.{level.value}.{name}", f"no {level.value} {name!r}")


def sync_city(session: Session, *, city: LoadedCity) -> City:
    """Copy the city's areas, agencies, categories and routing into the store (idempotent)."""
    cfg = city.config
    areas = {a.code: a for a in session.scalars(select(Area))}

    def upsert_area(code: str, name: str, level: AreaLevel, parent: Area | None) -> Area:
        area = areas.get(code)
        if area is None:
            area = areas[code] = Area(code=code)
            session.add(area)
        area.name, area.level, area.parent = name, level, parent
        return area

    kota = upsert_area(cfg.area_code, cfg.name, AreaLevel.KOTA, None)
    kecamatan_by_name: dict[str, Area] = {}
    for row in city.wilayah:
        kec = upsert_area(row.kode_kecamatan, row.kecamatan, AreaLevel.KECAMATAN, kota)
        kecamatan_by_name[row.kecamatan] = kec
        upsert_area(row.kode_kelurahan, row.kelurahan, AreaLevel.KELURAHAN, kec)

    agencies = {a.code: a for a in session.scalars(select(Agency))}
    for a in agencies.values():
        a.active = False  # agencies gone from the file stay for their tickets, inactive
    for ac in cfg.agencies:
        agency = agencies.get(ac.code)
        if agency is None:
            agency = agencies[ac.code] = Agency(code=ac.code)
            session.add(agency)
        agency.name, agency.short_name, agency.contact = ac.name, ac.short_name, dict(ac.contact)
        agency.telegram_chat_id, agency.active = ac.telegram_chat_id, True
        agency.send_method = ac.backend.send_method

    categories = {c.code: c for c in session.scalars(select(Category))}
    for code, cc in cfg.categories.items():
        category = categories.get(code)
        if category is None:
            category = categories[code] = Category(code=code)
            session.add(category)
        category.name, category.description = cc.name, cc.description

    row = session.scalar(select(City).where(City.code == cfg.code))
    if row is None:
        row = City(code=cfg.code)
        session.add(row)
    row.name, row.ticket_prefix, row.timezone = cfg.name, cfg.ticket_prefix, cfg.timezone
    row.area, row.fallback_agency = kota, agencies[cfg.routing.fallback]
    session.flush()

    wanted: dict[tuple[int, int], int] = {}
    for code, route in cfg.routing.categories.items():
        category_id = categories[code].id
        if isinstance(route, str):
            route = CategoryRoute(default=route)
        wanted[(category_id, kota.id)] = agencies[route.default].id
        for kec_name, agency_code in route.kecamatan.items():
            wanted[(category_id, kecamatan_by_name[kec_name].id)] = agencies[agency_code].id
    for rule in session.scalars(select(RoutingRule)):
        agency_id = wanted.pop((rule.category_id, rule.area_id), None)
        if agency_id is None:
            session.delete(rule)
        else:
            rule.agency_id = agency_id
    session.flush()  # deletions first, so a re-added pair does not collide
    session.add_all(
        RoutingRule(category_id=c, area_id=a, agency_id=g) for (c, a), g in wanted.items()
    )
    session.flush()
    return row


def city_file_path(data_dir: Path, city: str) -> Path:
    """Return where a city's file lives under the data directory."""
    return data_dir / "cities" / f"{city}.yml"
