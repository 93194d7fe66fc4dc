#!/usr/bin/env bash
# Install Debian's chromium, which the page tests (tests/integration/test_page.py)
# drive headless over the DevTools protocol, when it is missing. Idempotent: it
# does nothing when chromium is on PATH. `make test` runs it before pytest, and
# the page tests run it themselves if still needed. Nothing is downloaded but
# Debian's package: no browser build from the internet.
set -euo pipefail

if command -v chromium >/dev/null; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "chromium is missing: run this as root, or  sudo apt-get install -y chromium" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
chromium --version
