#!/usr/bin/env bash
# Install (idempotently) the JavaScript reference tools the tests use as independent consumers:
# fast-json-patch (RFC 6902) and canonicalize (RFC 8785), at the exact versions and integrity
# hashes of scripts/js/package-lock.json, with the machine's node and npm (`npm ci`). Prints two
# lines that can be eval'd:
#   export SNAPSYNC_TEST_NODE=/usr/bin/node
#   export SNAPSYNC_TEST_NODE_PATH=/path/to/snapsync-jsenv/node_modules
# Progress goes to stderr. Works from any cwd. Needs node >= 18 and npm; without them it fails
# (a test suite that skipped its JS consumer would prove nothing).
#
# canonicalize is an ES module, and ES modules ignore NODE_PATH: run a driver with
# `node --input-type=module -e ...` from the directory that holds node_modules (bare imports
# in --eval resolve from the working directory), as tests/integration/delta_interop.rs does.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JSENV_DIR=${SNAPSYNC_JSENV:-${XDG_CACHE_HOME:-$HOME/.cache}/snapsync-jsenv}
LOCK="$ROOT/scripts/js/package-lock.json"

fail() {
  echo "js-env: $*" >&2
  exit 1
}
NODE=$(command -v node) || fail "node not found on PATH: install Node.js >= 18 with npm (Debian: apt-get install nodejs npm)"
command -v npm >/dev/null || fail "npm not found on PATH: install npm (Debian: apt-get install npm)"
major=$("$NODE" -p 'process.versions.node.split(".")[0]') || fail "$NODE does not run"
[ "$major" -ge 18 ] || fail "$NODE is Node.js $("$NODE" --version); canonicalize 4 needs >= 18"

loads() {
  (cd "$JSENV_DIR" && "$NODE" --input-type=module \
    -e "import c from 'canonicalize'; import p from 'fast-json-patch'; if (typeof c !== 'function' || typeof p.applyPatch !== 'function') process.exit(1)") \
    >/dev/null 2>&1
}

# Up to date when the recorded lockfile is the repo's and both modules load.
if ! { cmp -s "$LOCK" "$JSENV_DIR/.installed-lock.json" && loads; }; then
  echo "installing fast-json-patch and canonicalize (npm ci) in $JSENV_DIR" >&2
  mkdir -p "$JSENV_DIR"
  rm -f "$JSENV_DIR/.installed-lock.json"
  cp "$ROOT/scripts/js/package.json" "$LOCK" "$JSENV_DIR/"
  # npm ci installs exactly the lockfile (integrity-checked) or fails; no install scripts run.
  (cd "$JSENV_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2
  loads || fail "fast-json-patch and canonicalize installed in $JSENV_DIR but do not load with $NODE"
  # recorded only after a successful install, so a failed one is retried next time
  cp "$LOCK" "$JSENV_DIR/.installed-lock.json"
fi

printf 'export SNAPSYNC_TEST_NODE=%q\n' "$NODE"
printf 'export SNAPSYNC_TEST_NODE_PATH=%q\n' "$JSENV_DIR/node_modules"
