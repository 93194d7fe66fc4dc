"""Serve the analyst's page (``tracker.page``) at ``/``: behind the HTTP guard, like every read."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from tracker.page import LIBRARY_PATH, SCRIPT_PATH, Asset, MissingLibrary, load_assets

__all__ = ["install_page"]

logger = logging.getLogger(__name__)


def install_page(web_app: web.Application) -> None:
    """Register ``/`` and the page's scripts; without the vendored library, ``/`` explains what is missing."""
    try:
        assets = load_assets()
    except MissingLibrary as exc:
        logger.warning("the page at / is unavailable: %s", exc)
        missing = str(exc)

        async def unavailable(request: web.Request) -> web.StreamResponse:
            """Say why the page cannot be served."""
            return web.Response(text=f"The page is unavailable: {missing}\n", status=503)

        web_app.router.add_get("/", unavailable)
        return
    headers = assets.headers()

    def serve(asset: Asset) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def answer(request: web.Request) -> web.StreamResponse:
            """Return the asset, or 304 when the client holds this version."""
            if request.headers.get("If-None-Match") == asset.etag:
                return web.Response(body=b"", status=304, headers={**headers, "ETag": asset.etag})
            # In the headers, not content_type=: aiohttp refuses a charset in that argument.
            content_type = f"{asset.content_type}; charset=utf-8"
            return web.Response(body=asset.body, headers={**headers, "ETag": asset.etag, "Content-Type": content_type})

        return answer

    for path in ("/", SCRIPT_PATH, LIBRARY_PATH):
        web_app.router.add_get(path, serve(assets.files[path]))
