#!/usr/bin/env bash
# deploy/chromium.sh: make sure headless Chromium is installed for the
# console's browser tests (cmd/internal/e2e, TestConsoleInBrowser), which
# drive /usr/bin/chromium with chromedp. Idempotent: returns at once when it
# is there. Needs root (apt-get), as deploy/brokers.sh does.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
echo "installing chromium for the browser tests (Debian's package)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium chromium-driver
