"""The `warga` command: operate a deployment from the terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

from actions import broadcasts, migrate
from actions.city import CityFileError, LoadedCity, city_file_path, load_city_file, sync_city
from actions.db import make_engine, make_session_factory
from actions.domain import DomainError, GroupKind, OfficerRole, TicketStatus
from actions.models import (
    Agency,
    Area,
    Category,
    GroupFollower,
    RoutingRule,
    Ticket,
    TicketEvent,
    utcnow,
)
from actions.people import add_officer, get_or_create_resident, list_officers, remove_officer
from actions.settings import Settings
from actions.tickets import get_ticket, list_tickets

if TYPE_CHECKING:
    from bot.app import Runtime


class App:
    """What the commands share, built on first use (never at import)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def engine(self) -> Engine:
        return make_engine(
            self.settings.effective_database_url, timeout=self.settings.warga_db_timeout
        )

    @property
    def channel(self) -> str:
        """The channel a person's id is on when no --channel says: Telegram where this
        deployment has a token (its bot runs there), else the terminal (console)."""
        return "telegram" if self.settings.telegram_bot_token is not None else "console"

    @cached_property
    def city(self) -> LoadedCity:
        s = self.settings
        return load_city_file(city_file_path(s.warga_data_dir, s.warga_city))

    def close(self) -> None:
        """Give the database connections back when the command ends."""
        if "engine" in self.__dict__:
            self.engine.dispose()

    @contextmanager
    def session(self, *, migrated: bool = True) -> Iterator[Session]:
        """Yield a session in one transaction, committed when the block ends without error."""
        if migrated:
            have, head = migrate.current(self.engine)
            if have != head:
                raise click.ClickException(
                    f"the database is at schema revision {have or 'none'}, the code needs "
                    f"{head}: run 'warga db upgrade'"
                )
        with make_session_factory(self.engine).begin() as session:
            yield session


class _Group(click.Group):
    """Turn the errors an operator can act on into one line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (DomainError, CityFileError) as exc:
            raise click.ClickException(str(exc)) from None
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise click.ClickException(f"database error: {detail}") from None


pass_app = click.make_pass_decorator(App)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Suara Warga: residents report, ask and propose; agencies answer.

    Settings come from the environment (DATABASE_URL, WARGA_CITY, ...): see the README.
    """
    ctx.obj = App(Settings())
    ctx.call_on_close(ctx.obj.close)


@cli.group(cls=_Group)
def db() -> None:
    """Create and migrate the database."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target schema revision.")
@pass_app
def db_upgrade(app: App, revision: str) -> None:
    """Bring the database schema up to date (creates a SQLite file if needed)."""
    migrate.upgrade(app.engine, revision)
    have, _ = migrate.current(app.engine)
    click.echo(f"database at schema revision {have}: {app.engine.url.render_as_string()}")


@db.command("current")
@pass_app
def db_current(app: App) -> None:
    """Show the database's schema revision and the newest one."""
    have, head = migrate.current(app.engine)
    click.echo(f"database: {have or 'empty'}; code: {head}")


@cli.group(cls=_Group)
def city() -> None:
    """Load the city file (agencies, categories, routing, wilayah)."""


def _city_from(app: App, file: Path | None) -> LoadedCity:
    return load_city_file(file) if file is not None else app.city


@city.command("check")
@click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@pass_app
def city_check(app: App, file: Path | None) -> None:
    """Validate a city file without touching the database."""
    loaded = _city_from(app, file)
    click.echo(f"{loaded.path}: ok ({loaded.config.name})")


@city.command("load")
@click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@pass_app
def city_load(app: App, file: Path | None) -> None:
    """Load FILE (default: the WARGA_CITY file) into the store; safe to run again."""
    loaded = _city_from(app, file)
    with app.session() as session:
        sync_city(session, city=loaded)
        counts = {
            name: session.scalar(select(func.count()).select_from(model).where(*where))
            for name, model, where in (
                ("areas", Area, ()),
                ("agencies", Agency, (Agency.active,)),
                ("categories", Category, ()),
                ("routing rules", RoutingRule, ()),
            )
        }
    summary = ", ".join(f"{n} {name}" for name, n in counts.items())
    click.echo(f"{loaded.config.name} loaded from {loaded.path}: {summary}")


@cli.group(cls=_Group)
def officer() -> None:
    """Add, list and remove the officers who work tickets."""


CHANNEL_DEFAULT = "telegram when TELEGRAM_BOT_TOKEN is set, else console"
_channel = click.option(
    "--channel",
    help="The chat channel of that id: telegram, console (the terminal chat) or whatsapp.",
    show_default=CHANNEL_DEFAULT,
)
_user = click.option("--user", "user_id", required=True, help="The person's user id there.")


@officer.command("add")
@_channel
@_user
@click.option("--agency", help="Agency code (see 'warga agency list'); admins may have none.")
@click.option(
    "--role",
    type=click.Choice([r.value for r in OfficerRole]),
    default=OfficerRole.OFFICER.value,
    show_default=True,
)
@click.option("--name", default="", help="Display name.")
@pass_app
def officer_add(
    app: App, channel: str | None, user_id: str, agency: str | None, role: str, name: str
) -> None:
    """Make someone an officer, supervisor or admin (again: changes their role)."""
    channel = channel or app.channel
    with app.session() as session:
        o = add_officer(
            session,
            channel=channel,
            platform_user_id=user_id,
            role=OfficerRole(role),
            agency_code=agency,
            display_name=name,
        )
        where = o.agency.code if o.agency else "all agencies"
        click.echo(f"{channel}:{user_id} is {o.role.value} of {where}")


@officer.command("list")
@click.option("--agency", help="Only this agency's officers.")
@pass_app
def officer_list(app: App, agency: str | None) -> None:
    """List officers by agency."""
    with app.session() as session:
        officers = list_officers(session, agency_code=agency)
        for o in officers:
            r = o.resident
            click.echo(
                f"{o.agency.code if o.agency else '-':<18} {o.role.value:<10} "
                f"{r.channel}:{r.platform_user_id:<14} {r.display_name}"
            )
        if not officers:
            click.echo("no officers yet: add one with 'warga officer add'")


@officer.command("remove")
@_channel
@_user
@pass_app
def officer_remove(app: App, channel: str | None, user_id: str) -> None:
    """Take away someone's officer role; their open tickets return to the queue."""
    channel = channel or app.channel
    with app.session() as session:
        remove_officer(session, channel=channel, platform_user_id=user_id)
    click.echo(f"{channel}:{user_id} is no longer an officer")


@cli.group(cls=_Group)
def agency() -> None:
    """The agencies (OPD and outside bodies) tickets are routed to."""


@agency.command("list")
@pass_app
def agency_list(app: App) -> None:
    """List the active agencies with their open tickets."""
    with app.session() as session:
        open_counts = dict(
            session.execute(
                select(Ticket.agency_id, func.count())
                .where(Ticket.status.in_([s.value for s in TicketStatus if s.is_open]))
                .group_by(Ticket.agency_id)
            ).all()
        )
        for a in session.scalars(select(Agency).where(Agency.active).order_by(Agency.code)):
            click.echo(f"{a.code:<18} {open_counts.get(a.id, 0):>5} open  {a.name}")


@cli.group(cls=_Group)
def ticket() -> None:
    """Look at tickets."""


@ticket.command("list")
@click.option("--agency", help="Only this agency's tickets.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in TicketStatus]),
    help="Only these statuses (repeatable); default: the open ones.",
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@pass_app
def ticket_list(app: App, agency: str | None, statuses: tuple[str, ...], limit: int) -> None:
    """List tickets, oldest first."""
    with app.session() as session:
        tickets = list_tickets(
            session,
            agency_code=agency,
            statuses=[TicketStatus(s) for s in statuses] or None,
            limit=limit,
        )
        for t in tickets:
            click.echo(
                f"{t.number}  {t.status.value:<11} {t.kind.value:<8} {_cut(t.category.name, 24)} "
                f"{t.agency.code if t.agency else '-':<14} {t.created_at:%Y-%m-%d %H:%M}Z  "
                f"{t.description[:50]}"
            )
        if not tickets:
            click.echo("no tickets match")


@ticket.command("show")
@click.argument("number")
@pass_app
def ticket_show(app: App, number: str) -> None:
    """Show one ticket with its whole history (operators see everything)."""
    with app.session() as session:
        t = get_ticket(session, number)
        events = session.scalars(
            select(TicketEvent)
            .where(TicketEvent.ticket_id == t.id)
            .options(selectinload(TicketEvent.actor))
            .order_by(TicketEvent.id)
        ).all()
        rows = [
            ("number", t.number),
            ("kind", t.kind.value),
            ("status", t.status.value),
            ("category", f"{t.category.name} ({t.category.code})"),
            ("agency", t.agency.name if t.agency else "-"),
            ("privacy", t.privacy.value),
            (
                "reporter",
                f"{t.reporter.channel}:{t.reporter.platform_user_id} "
                f"{t.reporter.display_name}".strip(),
            ),
            (
                "assignee",
                t.assignee.display_name or t.assignee.platform_user_id if t.assignee else "-",
            ),
            ("area", t.area.name if t.area else "-"),
            ("location", t.location_text or "-"),
            ("coordinates", f"{t.latitude}, {t.longitude}" if t.latitude is not None else "-"),
            ("photos", ", ".join(p.file_id for p in t.photos) or "-"),
            ("created", f"{t.created_at:%Y-%m-%d %H:%M}Z"),
            ("first response due", _when(t.first_response_due_at)),
            ("resolution due", _when(t.resolution_due_at)),
            ("description", t.description),
        ]
        rows += [("forwarded to", line) for line in _forwarding_lines(session, t)]
        for key, value in rows:
            click.echo(f"{key + ':':<20}{value}")
        click.echo("history:")
        for e in events:
            who = e.actor.display_name or e.actor.platform_user_id if e.actor else "system"
            change = f"{e.from_status or ''} -> {e.to_status}" if e.to_status else ""
            click.echo(
                f"  {e.created_at:%Y-%m-%d %H:%M}Z  {e.kind.value:<15} {who:<16} "
                f"{change} {e.body}".rstrip()
            )


def _cut(text: str, width: int) -> str:
    """`text` in a column of `width` characters: padded, or cut with "…"."""
    return f"{text[: width - 1]}…" if len(text) > width else f"{text:<{width}}"


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M}Z" if value is not None else "-"


def _forwarding_lines(session: Session, ticket: Ticket) -> list[str]:
    """One line per hand-over to an agency's system: sent, retrying or failed, and why."""
    from actions.open311 import forwarding_of

    said = {
        "sent": "sent, their id {id} ({remote})",
        "failed": "FAILED after {n} attempts: {error}",
        "retrying": "retrying ({n} failed, next {next}): {error}",
        "waiting": "waiting to be sent",
    }
    return [
        f"{f.agency}: "
        + said[f.phase].format(
            id=f.service_request_id or "-",
            remote=f.remote_status,
            n=f.attempts,
            error=f.last_error,
            next=_when(f.next_attempt_at),
        )
        for f in forwarding_of(session, ticket)
    ]


def _runtime(app: App) -> Runtime:
    from bot.app import Runtime

    return Runtime(app.settings)


@cli.command()
@click.option(
    "--user",
    "user_id",
    default="warga",
    show_default=True,
    help="Who you are in the chat (an officer's id makes you that officer).",
)
@click.option("--name", default="", help="Display name.")
@click.option(
    "--channel",
    help="The channel of that id, as in 'warga officer add' (telegram: act as a Telegram user).",
    show_default=CHANNEL_DEFAULT,
)
@pass_app
def chat(app: App, user_id: str, name: str, channel: str | None) -> None:
    """Chat with the bot in the terminal (reads lines from standard input when piped)."""
    _chat(_runtime(app), user_id=user_id, name=name, channel=channel or app.channel)


CHAT_LOG = "chat.log"  # in WARGA_VAR_DIR


def _chat(runtime: Runtime, *, user_id: str, name: str, channel: str) -> None:
    from bot.channels.console import ConsoleChat

    log_file = runtime.settings.warga_var_dir / CHAT_LOG
    with _logging_to(log_file):
        runtime.prepare_database()
        console = ConsoleChat(
            runtime.assistant, user_id=user_id, display_name=name, out=sys.stdout, channel=channel
        )
        interactive = sys.stdin.isatty()
        if interactive:
            click.echo(
                f"{runtime.city.config.name} — Suara Warga (Ctrl-D to quit; log: {log_file})"
            )
            console.say("/start")
        console.run(sys.stdin, interactive=interactive)


@contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """Send the log (INFO and above: emergencies, failed updates, ...) to `path` while the
    terminal chat runs: the terminal shows the conversation only, on stdout and stderr alike."""
    import logging

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)  # with a handler, Python no longer prints warnings to stderr
    root.setLevel(min(level, logging.INFO))
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


STOP_WITHIN = 9.0  # seconds from SIGTERM to exit, whatever hangs (all that matters is stored)


@cli.command()
@pass_app
def run(app: App) -> None:
    """Start the bot: Telegram when TELEGRAM_BOT_TOKEN is set, else the terminal chat."""
    runtime = _runtime(app)
    if app.settings.telegram_bot_token is None:
        _chat(runtime, user_id="warga", name="", channel="console")
        return
    import asyncio

    from bot.channels.telegram import TelegramChannel

    runtime.prepare_database()
    channel = TelegramChannel(
        runtime.assistant,
        token=app.settings.telegram_bot_token.get_secret_value(),
        api_url=app.settings.telegram_api_url,
        polling=True,
    )
    asyncio.run(_run_polling(runtime, channel))


async def _run_polling(runtime: Runtime, channel: Any) -> None:
    """Poll Telegram and work until SIGINT or SIGTERM, then stop within STOP_WITHIN."""
    import asyncio
    import contextlib
    import signal

    from bot.open311 import run_backends
    from bot.service import Service

    service = Service(runtime.assistant, [channel])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    open311 = runtime.open311
    backends = asyncio.create_task(run_backends(open311)) if open311.links else None
    try:
        await stop.wait()
    finally:
        _leave_within(STOP_WITHIN)
        if backends is not None:
            backends.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await backends
        await service.stop()


def _leave_within(seconds: float) -> None:
    """From now on, exit after `seconds` even if something hangs (a database call, a
    thread): everything acknowledged is in the store, so a hard exit loses nothing."""
    import logging
    import os
    import threading

    def leave() -> None:
        logging.getLogger(__name__).warning("stopping took over %.0f s: leaving now", seconds)
        logging.shutdown()
        os._exit(0)

    timer = threading.Timer(seconds, leave)
    timer.daemon = True
    timer.start()


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--public-url",
    envvar="WARGA_PUBLIC_URL",
    help="Public https URL of this server; the Telegram webhook is registered there.",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 64),
    help="Updates handled at once by this process [default: 8 on PostgreSQL, 2 on SQLite].",
)
@pass_app
def serve(app: App, host: str, port: int, public_url: str | None, workers: int | None) -> None:
    """Serve the web app: the Open311 API (docs at /docs), and the Telegram and WhatsApp
    webhooks when they are configured; several processes may share one database."""
    import uvicorn

    from bot.web import create_app

    s = app.settings
    token, secret = s.telegram_bot_token, s.telegram_webhook_secret
    if token is not None and secret is None:
        raise click.ClickException(
            "serving the Telegram webhook needs TELEGRAM_WEBHOOK_SECRET in the environment"
        )
    runtime = _runtime(app)
    runtime.prepare_database()
    channels: list[Any] = []
    if token is not None and secret is not None:
        from bot.channels.telegram import TelegramChannel

        channels.append(
            TelegramChannel(
                runtime.assistant,
                token=token.get_secret_value(),
                api_url=s.telegram_api_url,
                secret=secret.get_secret_value(),
                public_url=public_url,
            )
        )
    if s.whatsapp_enabled:
        channels.append(_whatsapp(runtime))
    web = create_app(
        runtime.assistant if channels else None,
        channels=channels,
        open311=runtime.open311,
        workers=workers,
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            _leave_within(STOP_WITHIN)
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        web, host=host, port=port, log_level="info", timeout_graceful_shutdown=3
    )
    Server(config).run()


def _whatsapp(runtime: Runtime) -> Any:
    from bot.channels.whatsapp import WhatsAppChannel, WhatsAppSettings

    return WhatsAppChannel(runtime.assistant, WhatsAppSettings.from_settings(runtime.settings))


@cli.group(cls=_Group)
def group() -> None:
    """Register civic groups (RT/RW, kelurahan, communities, agencies) and their managers."""


@group.command("add")
@click.argument("code")
@click.option("--name", required=True, help="The name residents see.")
@click.option(
    "--kind",
    type=click.Choice([k.value for k in GroupKind]),
    default=GroupKind.KOMUNITAS.value,
    show_default=True,
)
@click.option(
    "--area",
    "areas",
    multiple=True,
    required=True,
    help="An area it may address (name or Kemendagri code); repeat for several.",
)
@click.option("--manager", "managers", multiple=True, help="A manager's user id; repeatable.")
@_channel
@pass_app
def group_add(
    app: App,
    code: str,
    name: str,
    kind: str,
    areas: tuple[str, ...],
    managers: tuple[str, ...],
    channel: str | None,
) -> None:
    """Register a group (or update it) with the areas it may address."""
    channel = channel or app.channel
    with app.session() as s:
        g = broadcasts.add_group(s, code=code, name=name, kind=GroupKind(kind), area_codes=areas)
        for user in managers:
            resident = get_or_create_resident(s, channel=channel, platform_user_id=user)
            broadcasts.add_manager(s, group=g, resident=resident)
        click.echo(
            f"{g.code}: {g.name} ({g.kind.value}); areas: {', '.join(a.name for a in g.areas)}"
        )


@group.command("list")
@pass_app
def group_list(app: App) -> None:
    """The groups, their areas, managers and followers."""
    with app.session() as s:
        for g in broadcasts.list_groups(s):
            managers = ", ".join(
                f"{r.channel}:{r.platform_user_id}" for r in broadcasts.managers_of(s, g)
            )
            followers = s.scalar(select(func.count()).where(GroupFollower.group_id == g.id))
            click.echo(
                f"{g.code:20} {g.name} ({g.kind.value}); areas: "
                f"{', '.join(a.name for a in g.areas)}; managers: {managers or '-'}; "
                f"followers: {followers}"
            )


@group.command("manager")
@click.argument("code")
@_user
@_channel
@click.option("--remove", is_flag=True, help="Take the right away instead.")
@pass_app
def group_manager(app: App, code: str, user_id: str, channel: str | None, remove: bool) -> None:
    """Let a person announce for a group (or stop them)."""
    channel = channel or app.channel
    with app.session() as s:
        g = broadcasts.get_group(s, code)
        resident = get_or_create_resident(s, channel=channel, platform_user_id=user_id)
        if remove:
            broadcasts.remove_manager(s, group=g, resident=resident)
        else:
            broadcasts.add_manager(s, group=g, resident=resident)
    click.echo(f"{channel}:{user_id} {'no longer manages' if remove else 'manages'} {g.code}")


@cli.group(cls=_Group)
def broadcast() -> None:
    """Send announcements and follow their delivery."""


@broadcast.command("send")
@click.option("--group", "group_code", required=True, help="The announcing group's code.")
@click.option(
    "--text", required=True, help="The announcement (plain text; escaped for each channel)."
)
@click.option("--area", help="Only followers of this area (and the areas inside it).")
@click.option("--photo", default="", help="A photo: a Telegram file id or an https URL.")
@click.option("--link", default="", help="A link, shown as a button.")
@click.option("--poll", "poll", multiple=True, help="A poll answer (2 to 4); repeat.")
@click.option("--at", "at", help="Local time to send, 'YYYY-MM-DD HH:MM' (default: now).")
@click.option(
    "--yes",
    is_flag=True,
    help="Do not ask for confirmation (needed when standard input is not a terminal).",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Deliver it now, with a progress bar.",
)
@pass_app
def broadcast_send(
    app: App,
    group_code: str,
    text: str,
    area: str | None,
    photo: str,
    link: str,
    poll: tuple[str, ...],
    at: str | None,
    yes: bool,
    wait: bool,
) -> None:
    """Queue an announcement; by default also deliver it here, showing progress."""
    tz = app.city.config.tz
    scheduled = None
    if at:
        try:
            scheduled = datetime.strptime(at, "%Y-%m-%d %H:%M").replace(tzinfo=tz)
        except ValueError:
            raise click.BadParameter("use 'YYYY-MM-DD HH:MM'", param_hint="--at") from None
    with app.session() as s:
        g = broadcasts.get_group(s, group_code)
        target = broadcasts.find_area(s, area) if area else None
        count = broadcasts.count_audience(s, group_id=g.id, area_id=target.id if target else None)
        who = target.name if target else f"followers of {g.name}"
        if count == 0 and scheduled is None:  # later, followers who join meanwhile hear it
            click.echo(f"{g.name} → {who}: nobody follows yet, so nothing was sent")
            return
        click.echo(f"{g.name} → {who}: {count} recipients now")
        if not yes:
            if not sys.stdin.isatty():
                raise click.ClickException(
                    "nothing was sent: standard input is not a terminal, so nobody can "
                    "confirm; add --yes to send without asking"
                )
            click.confirm("Send?", abort=True)
        b = broadcasts.create_broadcast(
            s,
            group=g,
            author=None,
            text=text,
            area=target,
            photo=photo,
            link=link,
            poll_options=poll,
            scheduled_at=scheduled,
        )
        broadcast_id = b.id
    click.echo(f"broadcast {broadcast_id} queued")
    if scheduled is not None or not wait:
        return
    if app.settings.telegram_bot_token is None:
        click.echo(
            "no TELEGRAM_BOT_TOKEN here: the running bot or 'warga broadcast worker' sends it "
            "(Telegram only where the token is set)"
        )
        return
    _deliver(app, until_done=broadcast_id)


@broadcast.command("worker")
@click.option("--rate", type=float, default=None, help="Messages per second (default 29).")
@pass_app
def broadcast_worker(app: App, rate: float | None) -> None:
    """Deliver announcements until stopped (run several, on several machines if needed).

    Announcements to terminal (console) residents are printed here; Telegram's are sent when
    TELEGRAM_BOT_TOKEN is set, else left to a worker that has it. Logs go to standard error."""
    import logging

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    _deliver(app, until_done=None, rate=rate)


def _deliver(app: App, *, until_done: int | None, rate: float | None = None) -> None:
    """Run a delivery worker; with `until_done`, until that broadcast is finished.

    Terminal (console) residents' announcements are printed to standard output as they are
    delivered; Telegram's go out only with TELEGRAM_BOT_TOKEN, else they wait for a worker
    that has it."""
    import asyncio
    import contextlib
    import logging
    import signal

    from bot.broadcaster import RATE, Broadcaster
    from bot.channels import console

    token = app.settings.telegram_bot_token
    runtime = _runtime(app)
    log = logging.getLogger(__name__)

    def progress_of() -> broadcasts.Progress:
        with runtime.sessions.begin() as s:
            return broadcasts.progress(s, broadcasts.get_broadcast(s, until_done))

    async def work() -> None:
        async with contextlib.AsyncExitStack() as stack:
            senders: dict[str, Any] = {
                console.CHANNEL: console.ConsolePrinter(sys.stdout, runtime.responses)
            }
            pace_key = console.CHANNEL
            if token is None:
                log.warning(
                    "no TELEGRAM_BOT_TOKEN: delivering to terminal (console) residents only; "
                    "Telegram residents' announcements wait for a worker with the token"
                )
            else:
                from bot.channels.telegram import CHANNEL, bot_sender

                senders[CHANNEL] = await stack.enter_async_context(
                    bot_sender(
                        token.get_secret_value(),
                        runtime.responses,
                        api_url=app.settings.telegram_api_url,
                    )
                )
                pace_key = CHANNEL  # one clock for the worker: Telegram's, the slowest
            worker = Broadcaster(
                runtime.sessions,
                runtime.responses,
                senders,
                rate=rate or RATE,
                pace_key=pace_key,
            )
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):  # finish the message in hand, then stop
                loop.add_signal_handler(sig, lambda: setattr(worker, "stopping", True))
            if until_done is None:
                await worker.run()
                return
            bar = click.progressbar(length=max(progress_of().recipients, 1), label="sending")
            with bar:
                shown = 0

                def done() -> bool:
                    nonlocal shown
                    p = progress_of()
                    bar.length = max(p.recipients, 1)
                    bar.update(p.done - shown)
                    shown = p.done
                    return p.state in ("done", "cancelled")

                await worker.run(idle=0.5, until=done)
            p = progress_of()
            click.echo(", ".join(f"{k} {v}" for k, v in p.counts.items() if v) or "no recipients")

    asyncio.run(work())


@broadcast.command("status")
@click.argument("broadcast_id", required=False, type=int)
@pass_app
def broadcast_status(app: App, broadcast_id: int | None) -> None:
    """Sent, pending, failed and blocked deliveries (the last 10 broadcasts, or one)."""
    with app.session() as s:
        shown = (
            [broadcasts.get_broadcast(s, broadcast_id)]
            if broadcast_id
            else broadcasts.recent_broadcasts(s, limit=10)
        )
        for b in shown:
            p = broadcasts.progress(s, b)
            counts = ", ".join(f"{k} {v}" for k, v in p.counts.items() if v) or "-"
            click.echo(
                f"#{b.id} {b.group.code} {p.state} at {_when(b.scheduled_at)}: "
                f"{p.recipients} recipients; {counts}"
            )
            for answer, votes in p.poll:
                click.echo(f"    {answer}: {votes}")
        if not shown:
            click.echo("no broadcasts yet: send one with 'warga broadcast send'")


@broadcast.command("cancel")
@click.argument("broadcast_id", type=int)
@pass_app
def broadcast_cancel(app: App, broadcast_id: int) -> None:
    """Stop a broadcast: what has not gone out is not sent."""
    with app.session() as s:
        b = broadcasts.get_broadcast(s, broadcast_id)
        n = broadcasts.cancel_broadcast(s, b, by=None, admin=True, now=utcnow())
    click.echo(f"broadcast {broadcast_id} cancelled; {n} deliveries not sent")


# ---------------------------------------------------------------- Open311


@cli.group(cls=_Group)
def open311() -> None:
    """The Open311 GeoReport v2 API: client keys, and hand-overs to agencies' systems."""


@open311.group("key", cls=_Group)
def open311_key() -> None:
    """Keys of the clients that may POST service requests (stored only as SHA-256 hashes)."""


@open311_key.command("add")
@click.argument("name")
@pass_app
def open311_key_add(app: App, name: str) -> None:
    """Give the client NAME a key; it is shown this once and cannot be shown again."""
    from actions.models import utcnow
    from actions.open311 import add_client

    with app.session() as session:
        key = add_client(session, name=name, now=utcnow())
    click.echo(f"api_key for {name} (keep it secret; it is not stored and cannot be shown again):")
    click.echo(key)


@open311_key.command("list")
@pass_app
def open311_key_list(app: App) -> None:
    """List clients: key prefix, created, revoked, tickets submitted."""
    from actions.open311 import list_clients

    with app.session() as session:
        clients = list_clients(session)
        for c, submitted in clients:
            state = f"revoked {_when(c.revoked_at)}" if c.revoked_at else "active"
            click.echo(
                f"{c.name:<24} {c.key_prefix}…  created {_when(c.created_at)}  {state:<26} "
                f"{submitted} tickets"
            )
        if not clients:
            click.echo("no clients yet: add one with 'warga open311 key add NAME'")


@open311_key.command("revoke")
@click.argument("name")
@pass_app
def open311_key_revoke(app: App, name: str) -> None:
    """Refuse the client NAME's key from now on (its tickets stay)."""
    from actions.models import utcnow
    from actions.open311 import revoke_client

    with app.session() as session:
        revoke_client(session, name=name, now=utcnow())
    click.echo(f"the key of {name} is revoked")


@open311.command("sync")
@pass_app
def open311_sync(app: App) -> None:
    """Hand due tickets to agencies' systems and read their updates once (for cron)."""
    import asyncio

    from bot.open311 import backends

    runtime = _runtime(app)
    ctx = runtime.open311

    async def once() -> tuple[int, int]:
        async with backends(ctx) as b:
            sent = await b.dispatcher.run_once()
            return sent, sum([await b.poller.poll(code) for code in b.poller.links])

    sent, applied = asyncio.run(once())
    click.echo(f"handed over {sent}, updates applied {applied}")


# ---------------------------------------------------------------- end of Open311


@cli.group(cls=_Group)
def sla() -> None:
    """The SLA clock (it also runs every 5 minutes inside 'warga run' and 'warga serve')."""


@sla.command("check")
@pass_app
def sla_check(app: App) -> None:
    """Remind assignees and escalate overdue tickets once; safe to run from cron."""
    from actions.models import utcnow
    from actions.sla import run_sla_check

    with app.session() as session:
        result = run_sla_check(session, city=app.city.config, now=utcnow())
    click.echo(
        f"reminded {len(result.reminded)}, first response escalated "
        f"{len(result.escalated_first_response)}, resolution escalated "
        f"{len(result.escalated_resolution)}"
    )


def _nlu_options(app: App) -> dict[str, Any]:
    from bot.app import nlu_extra

    s = app.settings
    return {
        "path": s.warga_data_dir / "nlu.yml",
        "extra": nlu_extra(s.warga_data_dir),
        "taxonomy": s.warga_data_dir / "taxonomy.yml",
        "places": app.city.places(),
        "ticket_prefix": app.city.config.ticket_prefix,
        "cache_dir": s.warga_var_dir / "nlu",
        "lexicon_dir": s.warga_data_dir / "lexicon",
    }


def _labels(app: App) -> list[str]:
    """The labels a reviewer may give: the taxonomy's, with the city's own categories."""
    from nlu.check import read_taxonomy, taxonomy_labels

    taxonomy = read_taxonomy(app.settings.warga_data_dir / "taxonomy.yml")
    categories = dict.fromkeys([*(taxonomy.get("categories") or {}), *app.city.config.categories])
    return taxonomy_labels({**taxonomy, "categories": categories})


class _Keys:
    """Single keys from a terminal; without one (a pipe, a test), one key per line."""

    def __init__(self) -> None:
        self.tty = sys.stdin.isatty()

    def key(self) -> str:
        if self.tty:
            key = click.getchar()[:1].lower()  # keys typed ahead come together: the first
            click.echo(key if key.isprintable() else "")
            return key
        line = sys.stdin.readline()
        if not line:
            return "q"  # the input ended: stop, keeping what was decided
        click.echo(line.strip())
        return line.strip()[:1].lower()

    def label(self) -> str:
        if self.tty:
            return str(click.prompt("  label", default="", show_default=False)).strip()
        click.echo("  label: ", nl=False)
        line = sys.stdin.readline().strip()
        click.echo(line)
        return line


REVIEW_KEYS = "[a]ccept  [r]elabel  [s]kip  [q]uit"


@click.command("review")
@pass_app
def nlu_review(app: App) -> None:
    """Go through the pending corrections one at a time: a accept, r relabel, s skip, q quit."""
    from actions.corrections import pending, review
    from actions.domain import ReviewState
    from actions.models import NluCorrection

    labels = _labels(app)
    with app.session() as s:
        ids = [c.id for c in pending(s)]
    if not ids:
        click.echo("no corrections waiting for review")
        return
    keys, done = _Keys(), {state: 0 for state in ReviewState}
    for n, cid in enumerate(ids, 1):
        with app.session(migrated=False) as s:
            c = s.get_one(NluCorrection, cid)
            if c.review is not ReviewState.PENDING:
                continue  # reviewed meanwhile, elsewhere
            click.echo(f"\n[{n}/{len(ids)}] #{c.id} {c.source.value} {_when(c.created_at)}")
            click.echo(f"  text:      {c.text}")
            click.echo(f"  predicted: {c.predicted}")
            click.echo(f"  corrected: {c.corrected}")
            decided = _decide(keys, labels)
            if decided is None:
                break
            state, label = decided
            review(c, state, label=label, labels=labels, now=utcnow())
            done[state] += 1
            click.echo(f"  -> {state.value}{f' as {c.final_label}' if c.final_label else ''}")
    click.echo(
        f"accepted {done[ReviewState.ACCEPTED]}, relabelled {done[ReviewState.RELABELLED]}, "
        f"skipped {done[ReviewState.SKIPPED]}"
    )


def _decide(keys: _Keys, labels: list[str]) -> tuple[Any, str | None] | None:
    """Ask for one decision; None to quit."""
    from actions.domain import ReviewState

    while True:
        click.echo(f"  {REVIEW_KEYS}? ", nl=False)
        key = keys.key()
        if key == "q":
            return None
        if key == "a":
            return ReviewState.ACCEPTED, None
        if key == "s":
            return ReviewState.SKIPPED, None
        if key == "r":
            label = _ask_label(keys, labels)
            if label is not None:
                return ReviewState.RELABELLED, label
            continue  # no label given: back to the keys
        click.echo(f"  unknown key {key!r}")


def _ask_label(keys: _Keys, labels: list[str]) -> str | None:
    """A label of the taxonomy, asked until one is given; None for an empty answer."""
    while True:
        label = keys.label()
        if not label:
            return None
        if label in labels:
            return label
        near = [x for x in labels if label.split("/")[-1] in x][:6]
        hint = f" (perhaps: {', '.join(near)})" if near else ""
        click.echo(
            f"  unknown label {label!r}{hint}; labels are like lapor/jalan, empty to go back"
        )


@click.command("export")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Only corrections recorded on or after this date (YYYY-MM-DD, UTC).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
@pass_app
def nlu_export(app: App, since: datetime | None, out: Path | None) -> None:
    """Write the accepted and relabelled corrections as Rasa NLU YAML, ready to merge into
    the NLU data (texts already in it are left out)."""
    from datetime import UTC

    from actions.corrections import training_examples
    from nlu.check import example_key
    from nlu.rasa_yaml import read_nlu, write_nlu_text

    data_path = app.settings.warga_data_dir / "nlu.yml"
    known = {example_key(e.text) for e in read_nlu(data_path).examples}
    with app.session() as s:
        found = training_examples(s, since=since.replace(tzinfo=UTC) if since else None)
    examples: dict[str, list[str]] = {}
    already = 0
    for label, texts in found.items():
        for text in texts:
            if example_key(text) in known:
                already += 1
            else:
                examples.setdefault(label, []).append(text)
    text = write_nlu_text(examples)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
    count = sum(len(v) for v in examples.values())
    where = f" to {out}" if out else ""
    click.echo(
        f"exported {count} examples under {len(examples)} labels{where}; "
        f"{already} already in {data_path.name}",
        err=True,
    )


def _add_nlu_group() -> None:
    from nlu.cli import build_group

    def options() -> dict[str, Any]:
        return _nlu_options(click.get_current_context().find_object(App))

    group = build_group(options)
    group.add_command(nlu_review)
    group.add_command(nlu_export)
    cli.add_command(group)


_add_nlu_group()


def main() -> None:
    import os

    # python-telegram-bot's coming behaviour now: durations such as RetryAfter.retry_after are
    # timedeltas (PTB 22 warns about the old integers on every 429).
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    cli(prog_name="warga")
