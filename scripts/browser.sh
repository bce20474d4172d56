#!/usr/bin/env bash
# The browser the UI test drives: Debian's chromium, installed here when it is missing and
# this machine can (root with apt-get), so the test suite needs nothing installed by hand.
# Elsewhere it says what to install, and the test skips, naming the package.
set -euo pipefail
for name in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$name" >/dev/null 2>&1; then exit 0; fi
done
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser test (apt-get, about a minute)..."
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
      > /tmp/nbp-chromium-install.log 2>&1; then
    tail -n 20 /tmp/nbp-chromium-install.log >&2
    echo "chromium could not be installed: the browser test will be skipped" >&2
  fi
else
  echo "no chromium on PATH: the browser test will be skipped (Debian: apt-get install -y chromium)" >&2
fi
