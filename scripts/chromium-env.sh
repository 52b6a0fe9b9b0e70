#!/usr/bin/env bash
# Install (idempotently) Debian's Chromium, which the history page test loads index.html in
# (headless), and print one line that can be eval'd:
#   export SNAPSYNC_TEST_CHROMIUM=/usr/bin/chromium
# Progress goes to stderr. A fresh CI machine runs as root; elsewhere install it yourself
# (`sudo apt-get install chromium`) or set SNAPSYNC_TEST_CHROMIUM to a Chromium or Chrome binary.
set -euo pipefail
bin=${SNAPSYNC_TEST_CHROMIUM:-}
if [ -z "$bin" ]; then
  bin=$(command -v chromium || true)
fi
if [ -z "$bin" ]; then
  echo "chromium-env.sh: installing Debian's chromium" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >&2; }
  bin=$(command -v chromium)
fi
"$bin" --version >&2
printf 'export SNAPSYNC_TEST_CHROMIUM=%q\n' "$bin"
