#!/usr/bin/env bash
# Benchmarks of the consumer and history commands (issue 7), on the file store:
#
#   scripts/bench-history.sh
#
# 1. pull bytes: a history of day D plus PULL_DAYS (30) next days of COUNTRIES x DAYS
#    (250 x 1000, ~30 MB) covid-shaped data (`snapsync-gen next --revise-window 30`) is
#    replayed; a consumer then pulls
#      catch-up  once, from version 1 to the newest (PULL_DAYS deltas, or latest if cheaper),
#      daily     after every day (one delta a day),
#    and the bytes downloaded are compared with downloading latest.json PULL_DAYS times (the
#    sum of the sizes of versions 2..=PULL_DAYS+1). Target: <= 10 %.
# 2. replay time: REPLAY_DAYS (365) next days replayed into a fresh file store, in batches of
#    BATCH (30) files generated just before each batch and deleted after it, so the disk holds
#    one batch of day files. Only the `snapsync replay` runs are timed. Between batches an
#    untimed `snapsync prune --keep-daily 7 --keep-monthly 12` keeps the store's snapshots
#    from filling the disk (a replay keeps the previous version in memory, and the first file
#    of a batch reads it from the database, never from old snapshots, so this does not change
#    what is measured). Each batch is one process; the same 60 files replayed as one process or
#    as two batches took the same time (8.5-8.8 s), so batching does not change the figure
#    either. One batch of 365 (BATCH=365) needs ~13 GB for the files, more than stays in the
#    page cache of a 23 GB machine: they are read back from disk. Target: <= 60 s.
#
# Environment: BENCH_DIR (/tmp/snapsync-bench-history), COUNTRIES (250), DAYS (1000),
# PULL_DAYS (30), REPLAY_DAYS (365), BATCH (30), SEED (1), SKIP_BUILD=1, SNAPSYNC_BIN, GEN_BIN,
# SKIP_PULL=1 / SKIP_REPLAY=1 (run one part only). Disk: about 1.5 GB at the peak.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/snapsync-bench-history}
COUNTRIES=${COUNTRIES:-250}
DAYS=${DAYS:-1000}
PULL_DAYS=${PULL_DAYS:-30}
REPLAY_DAYS=${REPLAY_DAYS:-365}
BATCH=${BATCH:-30}
SEED=${SEED:-1}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SNAPSYNC=${SNAPSYNC_BIN:-$TARGET_DIR/release/snapsync}
GEN=${GEN_BIN:-$TARGET_DIR/release/snapsync-gen}
PYTHON=${PYTHON:-python3}

say() { printf 'bench-history: %s\n' "$*" >&2; }
die() { printf 'bench-history: error: %s\n' "$*" >&2; exit 1; }
for n in COUNTRIES DAYS PULL_DAYS REPLAY_DAYS BATCH; do
  case "${!n}" in '' | *[!0-9]* | 0) die "$n must be a positive integer, got '${!n}'" ;; esac
done
command -v "$PYTHON" >/dev/null || die "$PYTHON not found"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  say "cargo build --release --bins"
  (cd "$ROOT" && cargo build --release --bins) >&2
fi
[ -x "$SNAPSYNC" ] || die "no snapsync binary at $SNAPSYNC"
[ -x "$GEN" ] || die "no snapsync-gen binary at $GEN"

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
export SNAPSYNC_LOG=${SNAPSYNC_LOG:-warn} SNAPSYNC_LOG_FORMAT=logfmt SNAPSYNC_DATASET=covid-countries
unset SNAPSYNC_CONFIG SNAPSYNC_URL SNAPSYNC_KEY
now() { date +%s.%N; }
# date_of N: the date of day N of the replayed history (day 0 is 2023-01-01).
date_of() { date -u -d "2023-01-01 + $1 days" +%F; }

# gen_next IN OUT DAY: the day after IN (seeded by the day, so every day differs).
gen_next() { "$GEN" next --in "$1" --out "$2" --seed "$(( SEED * 100000 + $3 ))" --revise-window 30; }

# --- 1. pull bytes --------------------------------------------------------------------------
if [ "${SKIP_PULL:-0}" != 1 ]; then
  P=$BENCH_DIR/pull
  rm -rf "$P"
  mkdir -p "$P/in"
  export SNAPSYNC_STORE="file://$P/store" SNAPSYNC_DB="$P/state.db"
  say "pull: generating $COUNTRIES x $DAYS (seed $SEED) and $PULL_DAYS next days, replaying them"
  "$GEN" --countries "$COUNTRIES" --days "$DAYS" --seed "$SEED" --out "$P/in/$(date_of 0).json"
  "$SNAPSYNC" replay "$P/in/$(date_of 0).json" >"$P/replay.out"
  "$SNAPSYNC" restore --version 1 --out "$P/catchup.json" >/dev/null
  cp "$P/catchup.json" "$P/daily.json"
  cp "$P/catchup.json.snapsync.json" "$P/daily.json.snapsync.json" 2>/dev/null || true
  daily_bytes=0
  prev="$P/in/$(date_of 0).json"
  for d in $(seq 1 "$PULL_DAYS"); do
    f="$P/in/$(date_of "$d").json"
    gen_next "$prev" "$f" "$d"
    "$SNAPSYNC" replay "$f" >>"$P/replay.out"
    b=$("$SNAPSYNC" pull --out "$P/daily.json" --json | "$PYTHON" -c 'import json,sys; r=json.load(sys.stdin); assert r["via"]=="deltas", r; print(r["bytes"])')
    daily_bytes=$((daily_bytes + b))
    rm -f "$prev"
    prev=$f
  done
  rm -f "$prev"
  catchup=$("$SNAPSYNC" pull --out "$P/catchup.json" --json)
  cmp -s "$P/catchup.json" "$P/daily.json" || die "the two consumers' copies differ"
  "$SNAPSYNC" verify >"$P/verify.out" || die "verify failed after the pull benchmark: $(tail -1 "$P/verify.out")"
  "$PYTHON" - "$P/store/covid-countries/manifest.json" "$catchup" "$daily_bytes" "$PULL_DAYS" <<'EOF'
import json, sys
manifest = json.load(open(sys.argv[1]))
catchup = json.loads(sys.argv[2])
daily, n = int(sys.argv[3]), int(sys.argv[4])
versions = manifest["versions"]
assert len(versions) == n + 1, len(versions)
latest_n = sum(v["canonical_bytes"] for v in versions[1:])
deltas = sum(v["delta_bytes"] for v in versions[1:])
print(f"{f'pull_latest_{n}x_bytes':<29}{latest_n}")
print(f"{'pull_deltas_total_bytes':<29}{deltas}  (sum of the {n} deltas, gzip)")
print(f"{'pull_catchup_bytes':<29}{catchup['bytes']}  via={catchup['via']} deltas_applied={catchup['deltas_applied']}")
print(f"{'pull_catchup_ratio':<29}{100 * catchup['bytes'] / latest_n:.2f} %  (target <= 10 %)")
print(f"{'pull_daily_bytes':<29}{daily}  ({n} pulls of one delta, manifest included)")
print(f"{'pull_daily_ratio':<29}{100 * daily / latest_n:.2f} %  (target <= 10 %)")
EOF
  rm -rf "$P/in"
fi

# --- 2. replay time ---------------------------------------------------------------------------
if [ "${SKIP_REPLAY:-0}" != 1 ]; then
  R=$BENCH_DIR/replay
  rm -rf "$R"
  mkdir -p "$R/batch"
  export SNAPSYNC_STORE="file://$R/store" SNAPSYNC_DB="$R/state.db"
  say "replay: $REPLAY_DAYS days of $COUNTRIES x $DAYS.. in batches of $BATCH"
  prev="$R/seed.json"
  "$GEN" --countries "$COUNTRIES" --days "$DAYS" --seed "$SEED" --out "$prev"
  "$SNAPSYNC" replay --dates "$(date_of 0)" "$prev" >"$R/replay.out"
  replay_s=0
  prune_s=0
  done_days=0
  while [ "$done_days" -lt "$REPLAY_DAYS" ]; do
    n=$BATCH
    [ $((done_days + n)) -gt "$REPLAY_DAYS" ] && n=$((REPLAY_DAYS - done_days))
    for i in $(seq 1 "$n"); do
      d=$((done_days + i))
      f="$R/batch/$(date_of "$d").json"
      gen_next "$prev" "$f" "$d"
      prev=$f
    done
    # The generator's files reach the disk first: the replay's own writes (and fsyncs) should
    # not queue behind them.
    sync
    t0=$(now)
    "$SNAPSYNC" replay "$R/batch" >>"$R/replay.out" || die "replay failed: $(tail -2 "$R/replay.out")"
    t1=$(now)
    replay_s=$("$PYTHON" -c "print($replay_s + $t1 - $t0)")
    done_days=$((done_days + n))
    mv "$prev" "$R/seed.json"
    prev="$R/seed.json"
    rm -f "$R/batch"/*.json
    t0=$(now)
    "$SNAPSYNC" prune --keep-daily 7 --keep-monthly 12 >/dev/null
    t1=$(now)
    prune_s=$("$PYTHON" -c "print($prune_s + $t1 - $t0)")
    say "replayed $done_days/$REPLAY_DAYS days, replay time so far ${replay_s%.*} s"
  done
  versions=$("$PYTHON" -c "import json; print(len(json.load(open('$R/store/covid-countries/manifest.json'))['versions']))")
  [ "$versions" = $((REPLAY_DAYS + 1)) ] || die "expected $((REPLAY_DAYS + 1)) versions, found $versions"
  t0=$(now)
  "$SNAPSYNC" verify >"$R/verify.out" || die "verify failed after the replay benchmark: $(tail -1 "$R/verify.out")"
  t1=$(now)
  "$PYTHON" - "$replay_s" "$REPLAY_DAYS" "$prune_s" "$(wc -c <"$R/seed.json")" "$t0" "$t1" <<'EOF'
import sys
replay, days, prune, size, v0, v1 = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
print(f"{f'replay_{days}_days_s':<29}{replay:.1f}  ({1000 * replay / days:.0f} ms/day; target <= 60 s)")
print(f"{'replay_last_day_bytes':<29}{size}")
print(f"{'prune_between_batches_s':<29}{prune:.1f}  (not in the replay time)")
print(f"{f'verify_{days + 1}_versions_s':<29}{v1 - v0:.1f}")
EOF
  du -sh "$R/store" | awk '{printf "%-29s%s\n", "replay_store_size", $1}'
  rm -rf "$R/batch" "$R/seed.json"
fi
