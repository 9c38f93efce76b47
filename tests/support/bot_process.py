"""The whole bot as real processes, for fault tests and benchmarks: `warga serve` against the
fake Bot API (`fake_bot_api.py`, in its own process, with Telegram's limits).

    with FakeBotProcess(scale=1) as fake, WargaServe(db_url, fake, var) as bot:
        bot.post_update(text_update(5001, "halo") | {"update_id": 1})   # as Telegram would
        fake.messages()                                                  # what the bot sent
        bot.kill()                                                       # SIGKILL, mid-burst
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any, Self

import httpx

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456789:PROCESS-test-token"  # noqa: S105 - the fake server's, not a secret
SECRET = "rahasia-webhook-proses"  # noqa: S105 - a test secret
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
# A resident's messages that get exactly one reply each; the proposal also makes a ticket.
SCRIPT = (
    "halo",
    "usul min bikin taman bermain anak di kelurahan Sidomulyo Barat",
    "terima kasih",
    "laporan saya",
    "halo lagi",
)


class FakeBotProcess:
    """The fake Bot API as its own process (it must outlive the bot processes it serves)."""

    def __init__(
        self, *, rate: float = 30.0, scale: float = 1.0, token: str = TOKEN, port: int = 0
    ) -> None:
        self.rate, self.scale, self.token, self.port = rate, scale, token, port
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "tests.support.fake_bot_api", "--rate", str(self.rate)]
            + ["--scale", str(self.scale), "--token", self.token, "--port", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("READY "):
            self.proc.kill()
            raise RuntimeError(f"the fake Bot API did not start: {line!r}")
        self.url = line.split(" ", 1)[1]
        self.http = httpx.Client(base_url=self.url, timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def push(self, updates: list[dict[str, Any]]) -> list[int]:
        """Users' updates for the fake to deliver (webhook or getUpdates); their ids."""
        return self.http.post("/_fake/updates", json=updates).json()["update_ids"]

    def messages(self, since: int = 0) -> list[dict[str, Any]]:
        return self.http.get("/_fake/messages", params={"since": since}).json()

    def records(self) -> list[dict[str, Any]]:
        """What became of each pushed update (state, attempts, first_sent_at, acked_at)."""
        return self.http.get("/_fake/updates").json()

    def stats(self) -> dict[str, Any]:
        return self.http.get("/_fake/stats").json()


class WargaServe:
    """`warga serve` as a child process on its own port, sharing `database_url`."""

    def __init__(
        self,
        database_url: str,
        fake: FakeBotProcess | str,
        var_dir: Path,
        *,
        webhook: bool = False,
        workers: int | None = None,
        log: IO[bytes] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        # The fake Bot API, or the URL of one that may not be up (yet).
        self.database_url, self.fake, self.var_dir = database_url, fake, var_dir
        self.webhook, self.workers, self.log = webhook, workers, log
        self.extra_env = extra_env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "WARGA_VAR_DIR": str(self.var_dir),
            "TELEGRAM_BOT_TOKEN": TOKEN if isinstance(self.fake, str) else self.fake.token,
            "TELEGRAM_API_URL": self.fake if isinstance(self.fake, str) else self.fake.url,
            "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "PYTHONPATH": str(ROOT),
            "PTB_TIMEDELTA": "1",
            **self.extra_env,
        }
        env.pop("WARGA_PUBLIC_URL", None)
        if self.webhook:  # the fake then delivers to us, as Telegram does
            env["WARGA_PUBLIC_URL"] = self.url
        return env

    def start(self, *, timeout: float = 90.0) -> Self:
        self.proc = subprocess.Popen(  # noqa: S603 - our own entry point, fixed arguments
            [sys.executable, "-c", "from bot.cli import main; main()", "serve"]
            + ["--port", str(self.port)]
            + (["--workers", str(self.workers)] if self.workers else []),
            cwd=ROOT,
            env=self.env(),
            stdout=self.log or subprocess.DEVNULL,
            stderr=self.log or subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"warga serve ended at start (exit {self.proc.returncode})")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("warga serve did not answer /healthz")
            time.sleep(0.1)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 15.0) -> float:
        """SIGTERM; return how long the process took to end."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def post_update(self, update: dict[str, Any], client: httpx.Client | None = None) -> int:
        """Deliver one update as Telegram would; the status code."""
        body = json.dumps(update)
        headers = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
        http = client or httpx
        return http.post(f"{self.url}/telegram/webhook", content=body, headers=headers).status_code

    def ready(self) -> tuple[int, dict[str, Any]]:
        response = httpx.get(f"{self.url}/readyz", timeout=10)
        return response.status_code, response.json()


def var_dir_with_model(tmp: Path, model_dir: Path) -> Path:
    """A var directory holding an already trained NLU model (training takes seconds)."""
    var = tmp / f"var-{time.monotonic_ns()}"
    shutil.copytree(model_dir, var / "nlu")
    return var
