#!/usr/bin/env bash
# Debian's chromium and its driver for the browser test (tests/e2e/test_ui.py); idempotent.
# Selenium drives /usr/bin/chromium through /usr/bin/chromedriver: no browser download.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  echo "✓ chromium and chromedriver present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
echo "✓ chromium and chromedriver installed"
