#!/usr/bin/env bash
# Create (idempotently) the Python venv the tests use as an independent reference implementation
# (jsonpatch for RFC 6902, rfc8785 for RFC 8785), with hash-pinned wheels. Prints one line that can be eval'd:
#   export SNAPSYNC_TEST_PYTHON=/path/to/venv/bin/python
# Progress goes to stderr. Works from any cwd. Needs python3 (with venv + pip).
set -euo pipefail
PYENV_DIR=${SNAPSYNC_PYENV:-${XDG_CACHE_HOME:-$HOME/.cache}/snapsync-pyenv}
PY="$PYENV_DIR/bin/python"
# Exact versions and sha256 of their wheels (change together).
REQUIREMENTS='jsonpatch==1.33 --hash=sha256:0ae28c0cd062bbd8b8ecc26d7d164fbbea9652a1a3693f3b956c1eae5145dade
jsonpointer==3.0.0 --hash=sha256:13e088adc14fca8b6aa8177c044e12701e6ad4b28ff10e65f2267a90109c9942
rfc8785==0.1.4 --hash=sha256:520d690b448ecf0703691c76e1a34a24ddcd4fc5bc41d589cb7c58ec651bcd48
'

# Up to date when the venv's python works and the recorded requirements are the ones above.
if ! { [ -x "$PY" ] && [ "$(cat "$PYENV_DIR/requirements.txt" 2>/dev/null)" = "$(printf '%s' "$REQUIREMENTS")" ] \
       && "$PY" -c 'import jsonpatch, rfc8785' >/dev/null 2>&1; }; then
  echo "creating python venv with jsonpatch and rfc8785 in $PYENV_DIR" >&2
  mkdir -p "$(dirname "$PYENV_DIR")"
  python3 -m venv "$PYENV_DIR" >&2
  printf '%s' "$REQUIREMENTS" > "$PYENV_DIR/requirements.txt.new"
  "$PYENV_DIR/bin/pip" install -q --disable-pip-version-check --no-input --only-binary=:all: \
    --require-hashes -r "$PYENV_DIR/requirements.txt.new" >&2
  # recorded only after a successful install, so a failed one is retried next time
  mv "$PYENV_DIR/requirements.txt.new" "$PYENV_DIR/requirements.txt"
fi

printf 'export SNAPSYNC_TEST_PYTHON=%q\n' "$PY"
