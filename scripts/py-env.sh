#!/usr/bin/env bash
# Create (idempotently) the Python venv the tests use as an independent reference implementation
# (jsonpatch for RFC 6902, rfc8785 for RFC 8785) and as the writer of the workbooks the join tests
# read (openpyxl for .xlsx, xlwt for .xls, msoffcrypto-tool to password-protect one), and DuckDB
# as a reader of the change table (Parquet), with hash-pinned wheels. Prints one line that can be eval'd:
#   export SNAPSYNC_TEST_PYTHON=/path/to/venv/bin/python
# Progress goes to stderr. Works from any cwd. Needs python3 (with venv + pip).
set -euo pipefail
PYENV_DIR=${SNAPSYNC_PYENV:-${XDG_CACHE_HOME:-$HOME/.cache}/snapsync-pyenv}
PY="$PYENV_DIR/bin/python"
# Exact versions and sha256 of their wheels (change together).
REQUIREMENTS='jsonpatch==1.33 --hash=sha256:0ae28c0cd062bbd8b8ecc26d7d164fbbea9652a1a3693f3b956c1eae5145dade
jsonpointer==3.0.0 --hash=sha256:13e088adc14fca8b6aa8177c044e12701e6ad4b28ff10e65f2267a90109c9942
rfc8785==0.1.4 --hash=sha256:520d690b448ecf0703691c76e1a34a24ddcd4fc5bc41d589cb7c58ec651bcd48
openpyxl==3.1.5 --hash=sha256:5282c12b107bffeef825f4617dc029afaf41d0ea60823bbb665ef3079dc79de2
et_xmlfile==2.0.0 --hash=sha256:7a91720bc756843502c3b7504c77b8fe44217c85c537d85037f0f536151b2caa
xlwt==1.3.0 --hash=sha256:a082260524678ba48a297d922cc385f58278b8aa68741596a87de01a9c628b2e
msoffcrypto-tool==6.1.0 --hash=sha256:32ced1299858018e6c1ca3d0007127335dbcff90e777a77eb52f92d5112869f8
olefile==0.47 --hash=sha256:543c7da2a7adadf21214938bb79c83ea12b473a4b6ee4ad4bf854e7715e13d1f
cryptography==50.0.2 --hash=sha256:9dab55f57c74c3cad24c323bacbbd04be4705ba6eb0d92e920b1fc4837ed5079
cffi==2.1.1 --hash=sha256:34e261f78cb6ceaaa36f42f2613f4380d94d9c759a9c73c769ee6e0247364632
pycparser==3.12 --hash=sha256:a076f3f489b39b43ed13563a1dafe42447445bec2e294154ec5c57fcdda4c85e
duckdb==2.0.1 --hash=sha256:eb32b389d99d14cbbec4c110f58237c77eacefc65ef6f737619f413c97a91a77
'

# Up to date when the venv's python works and the recorded requirements are the ones above.
if ! { [ -x "$PY" ] && [ "$(cat "$PYENV_DIR/requirements.txt" 2>/dev/null)" = "$(printf '%s' "$REQUIREMENTS")" ] \
       && "$PY" -c 'import jsonpatch, rfc8785, openpyxl, xlwt, msoffcrypto, duckdb' >/dev/null 2>&1; }; then
  echo "creating python venv with jsonpatch, rfc8785, openpyxl, xlwt, msoffcrypto-tool and duckdb in $PYENV_DIR" >&2
  mkdir -p "$(dirname "$PYENV_DIR")"
  python3 -m venv "$PYENV_DIR" >&2
  printf '%s' "$REQUIREMENTS" > "$PYENV_DIR/requirements.txt.new"
  "$PYENV_DIR/bin/pip" install -q --disable-pip-version-check --no-input --only-binary=:all: \
    --require-hashes -r "$PYENV_DIR/requirements.txt.new" >&2
  # recorded only after a successful install, so a failed one is retried next time
  mv "$PYENV_DIR/requirements.txt.new" "$PYENV_DIR/requirements.txt"
fi

printf 'export SNAPSYNC_TEST_PYTHON=%q\n' "$PY"
