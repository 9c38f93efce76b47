"""The web app (`warga serve`): Telegram's webhook, the Open311 API, and later WhatsApp's."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from bot.conversation import Assistant
from bot.open311 import SWEEP_INTERVAL, Open311Context, create_api, run_backends

log = logging.getLogger(__name__)

TELEGRAM_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name


def create_app(
    assistant: Assistant | None,
    *,
    telegram_token: str | None = None,
    telegram_secret: str | None = None,
    telegram_api_url: str | None = None,
    public_url: str | None = None,
    open311: Open311Context | None = None,
    open311_interval: float | None = SWEEP_INTERVAL,
    **telegram_options: Any,
) -> Starlette:
    """Build the ASGI app; with `public_url`, the webhook is registered with Telegram at start.

    Every webhook request must carry the secret Telegram was given (constant-time compared);
    anything else is refused with 403 and never reaches the bot. Without a Telegram token the
    app serves the Open311 API alone. `open311_interval` None: no hand-overs to agencies'
    systems run in the background (a test drives them).
    """
    if open311 is None:
        if assistant is None:
            raise ValueError("the web app needs the bot or an Open311 context")
        open311 = Open311Context(
            assistant.sessions, assistant.city, assistant.responses, clock=assistant.clock
        )
    routes: list[Any] = [Route("/healthz", health, methods=["GET"])]
    tg = None
    if telegram_token:
        if assistant is None or not telegram_secret:
            raise ValueError("TELEGRAM_WEBHOOK_SECRET must be set to serve the Telegram webhook")
        tg = _telegram(assistant, telegram_token, telegram_api_url, telegram_options)
        routes.insert(0, Route(TELEGRAM_PATH, _webhook(tg, telegram_secret), methods=["POST"]))
    routes.append(Mount("/", app=create_api(open311)))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        background = None
        if open311_interval is not None:
            background = asyncio.create_task(run_backends(open311, interval=open311_interval))
        try:
            if tg is None:
                yield
            else:
                async with _telegram_running(tg, public_url, telegram_secret or ""):
                    yield
        finally:
            if background is not None:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background

    return Starlette(routes=routes, lifespan=lifespan)


async def health(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _telegram(
    assistant: Assistant, token: str, api_url: str | None, options: dict[str, Any]
) -> Any:
    from bot.channels.telegram import build_application

    return build_application(
        assistant,
        token=token,
        api_url=api_url,
        customize=lambda builder: builder.updater(None),
        **options,
    )


@asynccontextmanager
async def _telegram_running(tg: Any, public_url: str | None, secret: str) -> AsyncIterator[None]:
    from telegram import Update

    await tg.initialize()
    if tg.post_init is not None:
        await tg.post_init(tg)
    await tg.start()
    if public_url:
        await tg.bot.set_webhook(
            url=public_url.rstrip("/") + TELEGRAM_PATH,
            secret_token=secret,
            allowed_updates=Update.ALL_TYPES,
        )
    try:
        yield
    finally:
        await tg.stop()
        if tg.post_shutdown is not None:
            await tg.post_shutdown(tg)
        await tg.shutdown()


def _webhook(tg: Any, secret: str) -> Any:
    async def telegram_webhook(request: Request) -> Response:
        from telegram import Update

        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return Response(status_code=403)
        try:
            data = await request.json()
            update = Update.de_json(data, tg.bot)
        except (ValueError, TypeError, KeyError):
            return JSONResponse({"error": "not a Telegram update"}, status_code=400)
        await tg.update_queue.put(update)
        return Response(status_code=200)

    return telegram_webhook
