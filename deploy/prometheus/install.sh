#!/usr/bin/env bash
# Install prometheus and promtool (package prometheus) and amtool (package
# prometheus-alertmanager) from Debian's packages when any of them is missing.
# Idempotent: it does nothing when all three are on PATH. `make test` runs it
# before pytest, and the monitoring tests run it themselves if still needed.
# The packages' own services are not started: the tests run their own
# Prometheus on a free loopback port, so a daemon on :9090 would only be in the way.
set -euo pipefail

if command -v prometheus >/dev/null && command -v promtool >/dev/null && command -v amtool >/dev/null; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "prometheus, promtool or amtool is missing: run this as root, or" >&2
    echo "  sudo apt-get install -y prometheus prometheus-alertmanager" >&2
    exit 1
fi

# invoke-rc.d asks policy-rc.d before starting a service; 101 means "not now".
policy=/usr/sbin/policy-rc.d
saved=""
if [ -e "$policy" ]; then
    saved="$(mktemp)"
    cp -p "$policy" "$saved"
fi
restore() {
    if [ -n "$saved" ]; then mv "$saved" "$policy"; else rm -f "$policy"; fi
}
trap restore EXIT
printf '#!/bin/sh\nexit 101\n' >"$policy"
chmod +x "$policy"

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
prometheus --version 2>&1 | head -n 1
amtool --version 2>&1 | head -n 1
