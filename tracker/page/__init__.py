"""The analyst's page: one HTML document, one script of ours and the charting library.

The files ship in this package (``static/``); the library is vendored from the
npm registry at ``make venv`` time (``library.json`` pins it, ``deploy/page/vendor.mjs``
fetches and checks it), so the worker serves everything itself and the page
works offline. The page reads the worker's JSON API from the browser; nothing
here knows about Kafka, Faust or HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LIBRARY_PATH", "LOCK", "SCRIPT_PATH", "STATIC", "Asset", "MissingLibrary", "PageAssets", "load_assets"]

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
LOCK = HERE / "library.json"
#: URL paths of the page's two scripts.
SCRIPT_PATH = "/page/page.js"
LIBRARY_PATH = "/page/chart.umd.min.js"
_STYLE = re.compile(rb"<style>(.*?)</style>", re.DOTALL)


class MissingLibrary(Exception):
    """The charting library was not vendored into the installed package."""


@dataclass(frozen=True)
class Asset:
    """One file the page needs: its bytes, content type and validator."""

    body: bytes
    content_type: str

    @property
    def etag(self) -> str:
        """Return a strong validator: the digest of the body."""
        return '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'


@dataclass(frozen=True)
class PageAssets:
    """The page's files by URL path, and the headers every answer carries."""

    files: dict[str, Asset]
    library: str

    def headers(self) -> dict[str, str]:
        """Return the security headers of the page: only its own scripts and its own inline style."""
        html = self.files["/"].body
        styles = " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(found).digest()).decode()}'" for found in _STYLE.findall(html)
        )
        policy = (
            "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
            f"style-src {styles}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
        return {
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            # Revalidated on each load: the ETag makes that a 304 when nothing changed.
            "Cache-Control": "no-cache",
        }


def load_assets(static: Path = STATIC, lock: Path = LOCK) -> PageAssets:
    """Read the page's files; raise MissingLibrary when the library was not vendored."""
    pinned = json.loads(lock.read_text(encoding="utf-8"))
    library = static / "vendor" / "chart.umd.min.js"
    if not library.is_file():
        raise MissingLibrary(
            f"{pinned['package']} {pinned['version']} is not in {library.parent}: "
            "run `make venv` (node deploy/page/vendor.mjs) before installing the package"
        )
    return PageAssets(
        files={
            "/": Asset((static / "index.html").read_bytes(), "text/html"),
            SCRIPT_PATH: Asset((static / "page.js").read_bytes(), "text/javascript"),
            LIBRARY_PATH: Asset(library.read_bytes(), "text/javascript"),
        },
        library=f"{pinned['package']} {pinned['version']}",
    )
