"""The web app (`warga serve`): the Telegram and WhatsApp webhooks and the Open311 API."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from bot.channels.telegram import build_application
from bot.conversation import Assistant
from bot.open311 import SWEEP_INTERVAL, Open311Context, create_api, run_backends

if TYPE_CHECKING:
    from bot.channels.whatsapp import WhatsAppChannel

log = logging.getLogger(__name__)

TELEGRAM_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name

Lifespan = Callable[[], AbstractAsyncContextManager[None]]


def create_app(
    assistant: Assistant | None,
    *,
    telegram_token: str | None = None,
    telegram_secret: str | None = None,
    telegram_api_url: str | None = None,
    public_url: str | None = None,
    whatsapp: WhatsAppChannel | None = None,
    open311: Open311Context | None = None,
    open311_interval: float | None = SWEEP_INTERVAL,
    **telegram_options: Any,
) -> Starlette:
    """Build the ASGI app for the channels given; with `public_url`, the Telegram webhook is
    registered with Telegram at start.

    Every Telegram webhook request must carry the secret Telegram was given (constant-time
    compared), every WhatsApp one a valid signature of its body; anything else is refused
    with 403 and never reaches the bot. The Open311 API is always served; without a channel it
    is served alone. Hand-overs to agencies' systems run in the background when the city file
    gives an agency one; `open311_interval` None: not at all (a test drives them).
    """
    if open311 is None:
        if assistant is None:
            raise ValueError("the web app needs the bot or an Open311 context")
        open311 = Open311Context(
            assistant.sessions, assistant.city, assistant.responses, clock=assistant.clock
        )
    routes: list[Any] = [Route("/healthz", health, methods=["GET"])]
    lifespans: list[Lifespan] = []
    if telegram_token:
        if assistant is None or not telegram_secret:
            raise ValueError("TELEGRAM_WEBHOOK_SECRET must be set to serve the Telegram webhook")
        route, lifespan = _telegram(
            assistant,
            token=telegram_token,
            secret=telegram_secret,
            api_url=telegram_api_url,
            public_url=public_url,
            **telegram_options,
        )
        routes.append(route)
        lifespans.append(lifespan)
    # -- WhatsApp --
    if whatsapp is not None:
        routes += whatsapp.routes()
        lifespans.append(_whatsapp_lifespan(whatsapp))
    # -- Open311 (last: it is mounted at the root) --
    routes.append(Mount("/", app=create_api(open311)))
    if open311_interval is not None and open311.links:  # some agency has its own system
        lifespans.append(_open311_lifespan(open311, open311_interval))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for each in lifespans:
                await stack.enter_async_context(each())
            yield

    return Starlette(routes=routes, lifespan=lifespan)


async def health(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _telegram(
    assistant: Assistant,
    *,
    token: str,
    secret: str,
    api_url: str | None,
    public_url: str | None,
    **options: Any,
) -> tuple[Route, Lifespan]:
    tg = build_application(
        assistant,
        token=token,
        api_url=api_url,
        customize=lambda builder: builder.updater(None),
        **options,
    )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
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

    return Route(TELEGRAM_PATH, telegram_webhook, methods=["POST"]), lifespan


def _whatsapp_lifespan(whatsapp: WhatsAppChannel) -> Lifespan:
    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await whatsapp.start()
        try:
            yield
        finally:
            await whatsapp.stop()

    return lifespan


def _open311_lifespan(context: Open311Context, interval: float) -> Lifespan:
    """Hand tickets to agencies' systems and read their updates, in the background."""

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        task = asyncio.create_task(run_backends(context, interval=interval))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return lifespan
