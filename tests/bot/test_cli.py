"""The `warga` command, run as an operator would, on a SQLite file."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from actions import migrate
from actions.city import load_city_file
from actions.db import make_engine, make_session_factory
from actions.domain import Privacy, TicketKind
from actions.people import get_or_create_resident
from actions.tickets import create_ticket
from bot.cli import cli
from bot.responses import Responses

ROOT = Path(__file__).resolve().parents[2]
WARGA = Path(sys.executable).parent / "warga"
README = (ROOT / "README.md").read_text(encoding="utf-8")
RESPONSES = Responses.load(ROOT / "data" / "responses")


def readme_lines() -> list[str]:
    """Every line of the README's shell examples that runs `warga`."""
    blocks = re.findall(r"```sh\n(.*?)```", README, re.DOTALL)
    lines = [line for block in blocks for line in block.splitlines() if "warga" in line]
    return [command for line in lines for command in line.split(" && ")]


def as_typed(line: str) -> list[str]:
    """A README command as one types it: without its comment and its optional [parts]."""
    line = re.sub(r"\s+#.*$", "", line)
    return shlex.split(re.sub(r"\s*\[[^\]]*\]", "", line))


def readme_command(start: str) -> list[str]:
    found = [line for line in readme_lines() if line.startswith(start)]
    assert found, f"the README has no '{start}' any more"
    return as_typed(found[0])


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory) -> Path:
    """One var directory for the chats of this module: the NLU model is trained once."""
    return tmp_path_factory.mktemp("var")


def shell_env(env: dict[str, str], var_dir: Path) -> dict[str, str]:
    """The environment of a shell after `. .venv/bin/activate`, without a Telegram token."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")}
    path = os.pathsep.join([str(WARGA.parent), base.get("PATH", "")])
    return {**base, **env, "WARGA_VAR_DIR": str(var_dir), "PATH": path}


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        "WARGA_CITY": "pekanbaru",
        "WARGA_VAR_DIR": str(tmp_path / "var"),
    }


def warga(env: dict[str, str], *args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert (result.exit_code == 0) is ok, result.output
    return result.output


@pytest.fixture
def ready(env) -> dict[str, str]:
    warga(env, "db", "upgrade")
    warga(env, "city", "load")
    return env


def test_every_command_group_has_help(env):
    for group in ([], ["db"], ["city"], ["officer"], ["agency"], ["ticket"], ["officer", "add"]):
        assert "Usage: " in warga(env, *group, "--help")


def test_db_upgrade_then_city_load_twice_gives_the_same_counts(env):
    assert f"schema revision {migrate.head()}" in warga(env, "db", "upgrade")
    first = warga(env, "city", "load")
    assert "99 areas, 21 agencies, 17 categories, 20 routing rules" in first
    assert warga(env, "city", "load").split("loaded")[1] == first.split("loaded")[1]


def test_commands_on_an_unmigrated_database_say_what_to_run(env):
    out = warga(env, "ticket", "list", ok=False)
    assert "run 'warga db upgrade'" in out


def test_officers_are_added_listed_changed_and_removed(ready):
    warga(ready, "officer", "add", "--user", "111", "--agency", "PUPR", "--name", "Budi")
    warga(ready, "officer", "add", "--user", "222", "--agency", "DLHK", "--role", "supervisor")
    warga(ready, "officer", "add", "--user", "333", "--role", "admin")
    listing = warga(ready, "officer", "list")
    assert "PUPR" in listing and "Budi" in listing and "supervisor" in listing
    assert "admin" in listing
    assert "222" not in warga(ready, "officer", "list", "--agency", "PUPR")
    assert "supervisor of PUPR" in warga(
        ready, "officer", "add", "--user", "111", "--agency", "PUPR", "--role", "supervisor"
    )
    warga(ready, "officer", "remove", "--user", "111")
    assert "Budi" not in warga(ready, "officer", "list")


def test_officer_errors_are_one_clear_line(ready):
    out = warga(ready, "officer", "add", "--user", "1", "--agency", "NOPE", ok=False)
    assert out.strip() == "Error: no active agency with code 'NOPE'"
    out = warga(ready, "officer", "add", "--user", "1", "--role", "officer", ok=False)
    assert out.strip() == "Error: the officer role needs an agency"
    out = warga(ready, "officer", "remove", "--user", "404", ok=False)
    assert out.strip() == "Error: no officer console:404"
    with_token = {**ready, "TELEGRAM_BOT_TOKEN": "123:abc"}
    out = warga(with_token, "officer", "remove", "--user", "404", ok=False)
    assert out.strip() == "Error: no officer telegram:404"


def test_the_readme_says_where_warga_is_before_any_warga_command():
    _, first_commands, after = README.split("```", 2)
    assert "./scripts/run" in first_commands and "warga" not in first_commands
    said = after.split("\n\n")[1]  # the paragraph right after the first two commands
    assert "`./.venv/bin/`" in said and "`. .venv/bin/activate`" in said
    assert README.index(said) < README.index("warga db upgrade")


def test_every_command_of_the_readme_runs_as_written(env, tmp_path):
    """The reference block, each line as typed (its optional parts left out); the ones that
    take over the terminal, serve or stand for several commands are covered elsewhere."""
    ran = []
    for line in readme_lines():
        argv = as_typed(line)
        if argv[0] != "warga" or argv[1] in ("chat", "run", "serve") or "worker" in argv:
            continue
        if any(t in " ".join(argv) for t in ("|", "…", "...", "CODE", "NAME", "TEXT", "FILE")):
            continue
        if argv[1:3] in (["nlu", "train"], ["nlu", "parse"], ["nlu", "eval"]):
            continue  # the NLU's own tests run these (they train a model)
        result = CliRunner().invoke(cli, argv[1:], env=env, catch_exceptions=False)
        if argv[1:3] == ["ticket", "show"]:  # the example's number does not exist here
            assert result.output.strip() == f"Error: no ticket {argv[3]}", line
        else:
            assert result.exit_code == 0, f"{line}\n{result.output}"
        ran.append(" ".join(argv[1:3]))
    assert {"db upgrade", "city load", "officer add", "group add", "sla check"} <= set(ran)


def test_an_officer_added_as_the_readme_says_is_that_officer_in_the_terminal_chat(
    env, var_dir, tmp_path
):
    """Literally: the README's commands, typed in a shell where `warga` is on the PATH."""
    shell = shell_env(env, var_dir)

    def typed(argv: list[str], stdin: str = "") -> str:
        result = subprocess.run(
            argv, env=shell, cwd=tmp_path, input=stdin, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    typed(readme_command("warga db upgrade"))
    typed(readme_command("warga city load"))
    add = readme_command("warga officer add")
    assert "--channel" not in add
    typed(add)
    user = add[add.index("--user") + 1]
    out = typed(["warga", "chat", "--user", user], "/antrian\n")
    assert RESPONSES.get("id", "officer.queue.empty") in out
    assert RESPONSES.get("id", "command.officer_only", command="antrian") not in out


def test_tickets_are_listed_and_shown_with_their_history(ready):
    engine = make_engine(ready["DATABASE_URL"])
    city = load_city_file(ROOT / "data" / "cities" / "pekanbaru.yml")
    with make_session_factory(engine).begin() as s:
        siti = get_or_create_resident(
            s, channel="telegram", platform_user_id="5", display_name="Siti"
        )
        create_ticket(
            s,
            city=city.config,
            reporter=siti,
            kind=TicketKind.LAPOR,
            category_code="jalan",
            description="lubang besar depan sekolah",
            location_text="Jl. Paus",
            privacy=Privacy.ANONIM,
            photos=[("telegram", "AgACAgUAAx0")],
            now=datetime(2026, 11, 30, 3, tzinfo=UTC),
        )
    engine.dispose()
    listing = warga(ready, "ticket", "list", "--agency", "PUPR")
    assert "PKU-2026-000001" in listing and "routed" in listing
    assert "lapor    Jalan dan jembatan " in listing  # the city file's name, not the code
    assert "no tickets match" in warga(ready, "ticket", "list", "--agency", "DLHK")
    shown = warga(ready, "ticket", "show", "pku-2026-000001")
    for expected in (
        "Dinas Pekerjaan Umum",
        "anonim",
        "AgACAgUAAx0",
        "Jl. Paus",
        "Jalan dan jembatan (jalan)",
        "created",
        "new -> routed",
        "2026-12-03 16:59Z",
    ):
        assert expected in shown, expected
    assert (
        "1 open"
        in [
            line for line in warga(ready, "agency", "list").splitlines() if line.startswith("PUPR")
        ][0]
    )


def test_an_unknown_ticket_is_one_line(ready):
    assert warga(ready, "ticket", "show", "PKU-2026-999999", ok=False).strip() == (
        "Error: no ticket PKU-2026-999999"
    )


def test_a_broken_city_file_is_one_line_without_traceback(tmp_path, env):
    broken = tmp_path / "kota.yml"
    broken.write_text("code: [\n")
    result = subprocess.run(
        [str(WARGA), "city", "check", str(broken)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"Error: {broken}: line ")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_run_without_a_telegram_token_chats_in_the_terminal_on_a_fresh_database(env):
    result = CliRunner().invoke(
        cli, ["run"], env=env, input="halo\nterima kasih\n", catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "> halo" in result.output and "Kota Pekanbaru" in result.output
    assert "Sama-sama" in result.output
    assert "20 routing rules" in warga(env, "city", "load")  # it migrated and loaded the city


def test_the_sla_clock_runs_once_from_the_command_line(ready):
    out = warga(ready, "sla", "check")
    assert out.strip() == "reminded 0, first response escalated 0, resolution escalated 0"


def test_serve_with_a_telegram_token_but_no_webhook_secret_says_what_it_needs(env):
    out = warga({**env, "TELEGRAM_BOT_TOKEN": "123:abc"}, "serve", ok=False)
    assert "TELEGRAM_WEBHOOK_SECRET" in out
    assert "Traceback" not in out


def test_groups_and_broadcasts_from_the_terminal(ready):
    from actions import broadcasts
    from tests.support.fake_bot_api import running

    out = warga(
        ready,
        "group",
        "add",
        "rw05-delima",
        "--name",
        "RW 05 Delima",
        "--kind",
        "rt_rw",
        "--area",
        "kelurahan Delima",
        "--manager",
        "777",
    )
    assert "rw05-delima: RW 05 Delima (rt_rw); areas: Delima" in out
    bad = warga(ready, "group", "add", "x1", "--name", "X", "--area", "Binawidya", ok=False)
    assert "ambiguous" in bad and "Traceback" not in bad
    assert "console:777" in warga(ready, "group", "list")  # no token: the terminal's id
    sessions = make_session_factory(make_engine(ready["DATABASE_URL"]))
    with sessions.begin() as s:
        delima = broadcasts.find_area(s, "kelurahan Delima")
        for user in ("9001", "9002", "9003"):
            r = get_or_create_resident(s, channel="telegram", platform_user_id=user)
            broadcasts.follow_area(s, resident_id=r.id, area=delima)

    send = ["broadcast", "send", "--group", "rw05-delima", "--area", "14.71.08.1008", "--yes"]
    # Without a token it is queued, and the operator is told who will deliver it.
    queued = warga(ready, *send, "--text", "Kerja bakti Minggu")
    assert "3 recipients" in queued and "broadcast 1 queued" in queued
    assert "TELEGRAM_BOT_TOKEN" in queued
    assert "broadcast 1 cancelled; 0 deliveries" in warga(ready, "broadcast", "cancel", "1")
    with running(rate=30, scale=10) as fake:
        env = {**ready, "TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_API_URL": fake.url}
        out = warga(
            env, *send, "--text", "Posyandu pagi atau sore?", "--poll", "Pagi", "--poll", "Sore"
        )
        assert "sending" in out and "sent 3" in out
        assert sorted(m.chat_id for m in fake.state.messages) == [9001, 9002, 9003]
    status = warga(ready, "broadcast", "status")
    assert "#2 rw05-delima done" in status and "3 recipients; sent 3" in status
    assert "#1 rw05-delima cancelled" in status and "Pagi: 0" in status
    later = warga(ready, *send, "--text", "Besok", "--at", "2099-01-01 08:00")
    assert "broadcast 3 queued" in later
    assert "YYYY-MM-DD HH:MM" in warga(ready, *send, "--text", "x", "--at", "besok", ok=False)
    assert "broadcast 4" not in warga(ready, "broadcast", "status")  # nothing was queued


def _group_with_followers(env: dict[str, str], *users: str) -> None:
    from actions import broadcasts

    warga(env, "group", "add", "rw05-delima", "--name", "RW 05 Delima", "--area", "Delima")
    engine = make_engine(env["DATABASE_URL"])
    with make_session_factory(engine).begin() as s:
        group = broadcasts.get_group(s, "rw05-delima")
        for user in users:
            r = get_or_create_resident(s, channel="telegram", platform_user_id=user)
            broadcasts.follow_group(s, resident_id=r.id, group=group)
    engine.dispose()


def test_a_broadcast_to_nobody_says_so_and_asks_nothing(ready):
    _group_with_followers(ready)
    send = ["broadcast", "send", "--group", "rw05-delima", "--text", "Kerja bakti"]
    out = warga(ready, *send)
    assert out.strip() == (
        "RW 05 Delima → followers of RW 05 Delima: nobody follows yet, so nothing was sent"
    )
    assert "no broadcasts yet" in warga(ready, "broadcast", "status")
    # Scheduled, it is queued: whoever follows by then hears it.
    later = warga(ready, *send, "--yes", "--at", "2099-01-01 08:00")
    assert "0 recipients now" in later and "broadcast 1 queued" in later


def test_a_broadcast_without_a_terminal_to_ask_on_needs_yes(ready):
    _group_with_followers(ready, "9001", "9002")
    send = ["broadcast", "send", "--group", "rw05-delima", "--text", "Kerja bakti"]
    result = CliRunner().invoke(cli, send, env=ready, input="")  # standard input is no terminal
    assert result.exit_code == 1
    assert "2 recipients now" in result.output and "add --yes" in result.output
    assert "[y/N]" not in result.output and "Aborted!" not in result.output
    assert "no broadcasts yet" in warga(ready, "broadcast", "status")


def test_a_broadcast_from_a_terminal_asks_first(ready):
    import pty

    _group_with_followers(ready, "9001")
    leader, follower = pty.openpty()
    shell = {**os.environ, **ready}
    shell.pop("TELEGRAM_BOT_TOKEN", None)
    with subprocess.Popen(
        [str(WARGA), "broadcast", "send", "--group", "rw05-delima", "--text", "Kerja bakti"],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=shell,
        text=True,
    ) as proc:
        os.close(follower)
        os.write(leader, b"y\n")
        out, _ = proc.communicate(timeout=60)
    os.close(leader)
    assert proc.returncode == 0, out
    assert "1 recipients now" in out and "Send? [y/N]" in out and "broadcast 1 queued" in out


def test_the_broadcast_worker_without_a_token_delivers_to_terminal_residents(ready, tmp_path):
    from actions import broadcasts

    warga(ready, "group", "add", "rw05-delima", "--name", "RW 05 Delima", "--area", "Delima")
    engine = make_engine(ready["DATABASE_URL"])
    with make_session_factory(engine).begin() as s:
        group = broadcasts.get_group(s, "rw05-delima")
        for channel, user in (("console", "budi"), ("telegram", "9001")):
            r = get_or_create_resident(s, channel=channel, platform_user_id=user)
            broadcasts.follow_group(s, resident_id=r.id, group=group)
    engine.dispose()
    send = ["broadcast", "send", "--group", "rw05-delima", "--text", "Kerja bakti Minggu"]
    assert "broadcast 1 queued" in warga(ready, *send, "--yes")
    shell = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")}
    with (
        open(tmp_path / "worker.log", "w") as stderr,
        subprocess.Popen(
            [str(WARGA), "broadcast", "worker"],
            env={**shell, **ready},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as worker,
    ):
        seen = []
        try:
            for line in worker.stdout:
                seen.append(line)
                if "Kerja bakti Minggu" in line:
                    break
        finally:
            worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    printed = "".join(seen)
    assert "🔔 → budi" in printed and "RW 05 Delima" in printed and "9001" not in printed
    log = (tmp_path / "worker.log").read_text()
    assert "no TELEGRAM_BOT_TOKEN: delivering to terminal (console) residents only" in log
    assert "Traceback" not in log
    assert "2 recipients; pending 1, sent 1" in warga(ready, "broadcast", "status", "1")


def test_the_terminal_chat_shows_the_conversation_and_logs_to_a_file(env, var_dir, tmp_path):
    """An emergency is logged (a warning): in the file under WARGA_VAR_DIR, never in the chat,
    whether the terminal shows standard error beside it (as here) or not."""
    result = subprocess.run(
        [str(WARGA), "chat", "--user", "siti"],
        env=shell_env(env, var_dir),
        cwd=tmp_path,
        input="tolong ada kebakaran di rumah sebelah!\n",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one screen, as in a terminal
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
    screen = result.stdout
    assert "📞 112" in screen and "📞 113" in screen
    assert "EMERGENCY" not in screen and "WARNING" not in screen
    assert screen.startswith("> tolong ada kebakaran")
    logged = (var_dir / "chat.log").read_text(encoding="utf-8")
    assert "WARNING bot.conversation: EMERGENCY from resident" in logged
