"""The page's files: what the worker serves at /, and what the page is allowed to load."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from tracker.page import LIBRARY_PATH, LOCK, SCRIPT_PATH, STATIC, MissingLibrary, load_assets

pytestmark = pytest.mark.unit


def test_the_page_is_one_document_one_script_of_ours_and_the_library() -> None:
    assets = load_assets()

    html = assets.files["/"].body.decode()

    assert set(assets.files) == {"/", SCRIPT_PATH, LIBRARY_PATH}
    assert re.findall(r'<script src="([^"]+)"', html) == [LIBRARY_PATH, SCRIPT_PATH]
    assert '<link rel="stylesheet"' not in html
    assert not re.search(r"(src|href)=\"https?://", html), "the page loads nothing from another site"


def test_the_library_is_the_pinned_chart_js_bundle() -> None:
    pinned = json.loads(LOCK.read_text())

    library = load_assets().files[LIBRARY_PATH].body

    assert pinned["package"] == "chart.js"
    assert library.startswith(f"/*!\n * Chart.js v{pinned['version']}".encode())
    assert pinned["integrity"].startswith("sha512-")


def test_the_content_security_policy_allows_only_our_scripts_and_our_style() -> None:
    assets = load_assets()
    html = assets.files["/"].body
    style = re.search(rb"<style>(.*?)</style>", html, re.DOTALL)
    assert style is not None

    policy = assets.headers()["Content-Security-Policy"]

    digest = base64.b64encode(hashlib.sha256(style.group(1)).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy
    assert "script-src 'self';" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy


def test_the_script_never_writes_markup_from_data() -> None:
    script = (STATIC / "page.js").read_text()

    assert "innerHTML" not in script
    assert "outerHTML" not in script
    assert "insertAdjacentHTML" not in script
    assert "document.write" not in script


def test_without_the_vendored_library_loading_says_how_to_get_it(tmp_path: Path) -> None:
    static = tmp_path / "static"
    shutil.copytree(STATIC, static, ignore=shutil.ignore_patterns("vendor"))

    with pytest.raises(MissingLibrary, match="make venv"):
        load_assets(static)
