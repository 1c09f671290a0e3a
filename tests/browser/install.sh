#!/usr/bin/env bash
# What the browser tests need beyond requirements.txt: Debian's chromium, and
# node/npm, with which the book's build vendors Pyodide for the live explorers.
# Run as root (CI does). Python packages (playwright, voila) come from
# requirements.txt; `playwright install` is never used: the tests drive
# /usr/bin/chromium directly.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends chromium
fi
if ! command -v npm >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends nodejs npm
fi
chromium --version 2>/dev/null || true
npm --version
