"""Serve the analyst's page (``tracker.page``) at ``/``: behind the HTTP guard, like every read."""

from __future__ import annotations

import logging

import faust
from faust.web import Request, Response, View

from tracker.page import LIBRARY_PATH, SCRIPT_PATH, Asset, MissingLibrary, load_assets

__all__ = ["install_page"]

logger = logging.getLogger(__name__)


def install_page(app: faust.App) -> None:
    """Register ``/`` and the page's scripts; without the vendored library, ``/`` explains what is missing."""
    try:
        assets = load_assets()
    except MissingLibrary as exc:
        logger.warning("the page at / is unavailable: %s", exc)
        missing = str(exc)

        @app.page("/")
        class Unavailable(View):
            async def get(self, request: Request) -> Response:
                """Say why the page cannot be served."""
                return self.text(f"The page is unavailable: {missing}\n", status=503)

        return
    headers = assets.headers()

    def answer(view: View, request: Request, asset: Asset) -> Response:
        if request.headers.get("If-None-Match") == asset.etag:
            return view.bytes(b"", status=304, headers={**headers, "ETag": asset.etag})
        # In the headers, not content_type=: aiohttp refuses a charset in that argument.
        content_type = f"{asset.content_type}; charset=utf-8"
        return view.bytes(asset.body, headers={**headers, "ETag": asset.etag, "Content-Type": content_type})

    @app.page("/")
    class Page(View):
        async def get(self, request: Request) -> Response:
            """Return the page."""
            return answer(self, request, assets.files["/"])

    @app.page(SCRIPT_PATH)
    class Script(View):
        async def get(self, request: Request) -> Response:
            """Return the page's script."""
            return answer(self, request, assets.files[SCRIPT_PATH])

    @app.page(LIBRARY_PATH)
    class Library(View):
        async def get(self, request: Request) -> Response:
            """Return the charting library."""
            return answer(self, request, assets.files[LIBRARY_PATH])
