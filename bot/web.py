"""The web app (`warga serve`): Telegram's webhook, and later WhatsApp's and the Open311 API."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.channels.telegram import build_application
from bot.conversation import Assistant

log = logging.getLogger(__name__)

TELEGRAM_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name


def create_app(
    assistant: Assistant,
    *,
    telegram_token: str,
    telegram_secret: str,
    telegram_api_url: str | None = None,
    public_url: str | None = None,
    **telegram_options: Any,
) -> Starlette:
    """Build the ASGI app; with `public_url`, the webhook is registered with Telegram at start.

    Every webhook request must carry the secret Telegram was given (constant-time compared);
    anything else is refused with 403 and never reaches the bot.
    """
    if not telegram_secret:
        raise ValueError("TELEGRAM_WEBHOOK_SECRET must be set to serve the Telegram webhook")
    tg = build_application(
        assistant,
        token=telegram_token,
        api_url=telegram_api_url,
        customize=lambda builder: builder.updater(None),
        **telegram_options,
    )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        from telegram import Update

        await tg.initialize()
        if tg.post_init is not None:
            await tg.post_init(tg)
        await tg.start()
        if public_url:
            await tg.bot.set_webhook(
                url=public_url.rstrip("/") + TELEGRAM_PATH,
                secret_token=telegram_secret,
                allowed_updates=Update.ALL_TYPES,
            )
        try:
            yield
        finally:
            await tg.stop()
            if tg.post_shutdown is not None:
                await tg.post_shutdown(tg)
            await tg.shutdown()

    async def telegram_webhook(request: Request) -> Response:
        from telegram import Update

        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), telegram_secret.encode()):
            return Response(status_code=403)
        try:
            data = await request.json()
            update = Update.de_json(data, tg.bot)
        except (ValueError, TypeError, KeyError):
            return JSONResponse({"error": "not a Telegram update"}, status_code=400)
        await tg.update_queue.put(update)
        return Response(status_code=200)

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route(TELEGRAM_PATH, telegram_webhook, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
