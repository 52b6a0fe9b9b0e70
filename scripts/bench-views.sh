#!/usr/bin/env bash
# The history page and the change table (issue 19), on the file store:
#
#   scripts/bench-views.sh
#
# VERSIONS (60) days of COUNTRIES x DAYS (210 x 300) covid-shaped data with the upstream's
# habits (`snapsync-gen --upstream`: re-sorted daily, ties reshuffled, renames, churn) and
# revisions of the last week (`next --revise 0.001 --revise-window 7`) are replayed. Then it
# prints:
#   - the replay's wall time, with and without the views (SNAPSYNC_BIN_NOVIEWS: a build
#     without them, if given);
#   - index.html's size, and its load time in headless Chromium: the median of RUNS (5)
#     `--dump-dom` loads minus the median of as many loads of an empty page (the browser's
#     own start);
#   - a screenshot (phone width) at $BENCH_DIR/history-page.png;
#   - the change table's size and a DuckDB query over it (the revised values per version).
#
# Environment: BENCH_DIR (/tmp/snapsync-bench-views), COUNTRIES, DAYS, VERSIONS, RUNS,
# SKIP_BUILD=1, SNAPSYNC_BIN, GEN_BIN, SNAPSYNC_TEST_CHROMIUM (default: chromium on PATH,
# installed by scripts/chromium-env.sh), SNAPSYNC_TEST_PYTHON (a python with duckdb; default:
# the venv of scripts/py-env.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/snapsync-bench-views}
COUNTRIES=${COUNTRIES:-210}
DAYS=${DAYS:-300}
VERSIONS=${VERSIONS:-60}
RUNS=${RUNS:-5}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SNAPSYNC=${SNAPSYNC_BIN:-$TARGET_DIR/release/snapsync}
GEN=${GEN_BIN:-$TARGET_DIR/release/snapsync-gen}

if [ "${SKIP_BUILD:-}" != 1 ]; then
  (cd "$ROOT" && cargo build --release --locked --bins >&2)
fi
eval "$(bash "$ROOT/scripts/chromium-env.sh")"
if [ -z "${SNAPSYNC_TEST_PYTHON:-}" ]; then
  eval "$(bash "$ROOT/scripts/py-env.sh")"
fi
CHROMIUM=$SNAPSYNC_TEST_CHROMIUM
PY=$SNAPSYNC_TEST_PYTHON

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR/days"
cd "$BENCH_DIR"
day() { date -u -d "2021-03-01 + $1 days" +%F; }
"$GEN" --countries "$COUNTRIES" --days "$DAYS" --upstream --out "days/$(day 0).json" 2>/dev/null
for i in $(seq 1 $((VERSIONS - 1))); do
  "$GEN" next --in "days/$(day $((i - 1))).json" --out "days/$(day "$i").json" --seed "$i" \
    --upstream --revise 0.001 --revise-window 7 2>/dev/null
done
echo "data: $VERSIONS days of $COUNTRIES countries, $(du -sh days | cut -f1) of JSON"

replay() { # $1: binary, $2: store dir
  local start end
  start=$(date +%s.%N)
  SNAPSYNC_LOG=warn "$1" --store "file://$BENCH_DIR/$2" --db "$BENCH_DIR/$2.db" --no-progress \
    replay days >/dev/null
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
echo "replay of $VERSIONS versions: $(replay "$SNAPSYNC" store) s"
if [ -n "${SNAPSYNC_BIN_NOVIEWS:-}" ]; then
  echo "replay without views: $(replay "$SNAPSYNC_BIN_NOVIEWS" store-noviews) s"
fi

PAGE=$BENCH_DIR/store/covid-countries/index.html
echo "index.html: $(stat -c %s "$PAGE") bytes ($(gzip -c "$PAGE" | wc -c) gzipped)"

load() { # $1: url; prints seconds
  local profile start end
  profile=$(mktemp -d)
  start=$(date +%s.%N)
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --dump-dom "$1" >/dev/null 2>&1
  end=$(date +%s.%N)
  rm -rf "$profile"
  echo "$end - $start" | bc
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo '<!doctype html><title>x</title>' > "$BENCH_DIR/empty.html"
empty=$(for _ in $(seq "$RUNS"); do load "file://$BENCH_DIR/empty.html"; done | median)
page=$(for _ in $(seq "$RUNS"); do load "file://$PAGE"; done | median)
echo "chromium load: page ${page}s, empty page ${empty}s (median of $RUNS): the page's own $(echo "($page - $empty) * 1000" | bc | cut -d. -f1) ms"
profile=$(mktemp -d)
"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size=412,1600 --screenshot="$BENCH_DIR/history-page.png" \
  "file://$PAGE" >/dev/null 2>&1
rm -rf "$profile"
echo "screenshot: $BENCH_DIR/history-page.png"

echo "change table: $(find store/covid-countries/changes -name '*.parquet' | wc -l) files, $(du -sb store/covid-countries/changes | cut -f1) bytes"
"$PY" - "$BENCH_DIR/store/covid-countries" <<'EOF'
import sys, duckdb
q = f"""SELECT version, count(*) FILTER (op = 'appended') AS appended,
       count(*) FILTER (op = 'revised') AS revised, count(*) FILTER (op = 'derived') AS derived,
       count(*) FILTER (op IN ('added', 'removed')) AS records_in_or_out
FROM read_parquet('{sys.argv[1]}/changes/*/*.parquet', hive_partitioning = true)
GROUP BY version ORDER BY version DESC LIMIT 5"""
print("duckdb> " + " ".join(q.split()))
duckdb.sql(q).show()
q = f"""SELECT key, path, old, new FROM read_parquet('{sys.argv[1]}/changes/*/*.parquet', hive_partitioning = true)
WHERE op = 'revised' ORDER BY abs(new_number - old_number) DESC LIMIT 5"""
print("duckdb> " + " ".join(q.split()))
duckdb.sql(q).show()
EOF
