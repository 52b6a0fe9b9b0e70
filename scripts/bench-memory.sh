#!/usr/bin/env bash
# Memory and CPU of `snapsync run` as the dataset grows (issue 20), on the file store, with the
# source served over loopback by scripts/serve.py:
#
#   scripts/bench-memory.sh
#
# For each size in SIZES (MB of covid-shaped data: 250 countries x 1000 days is ~30 MB, so a
# size S is S*250/30 countries x 1000 days), generated with `snapsync-gen` and the real
# upstream's habits (HABITS, `--upstream`: records sorted by cases, ties reshuffled, a rare
# rename, drop or add), and two next days of it:
#   first    the day-D file into an empty store and db
#   changed  `next --revise 0.001 --upstream`: revisions anywhere in the history, so every later
#            running total shifts (~260k changed values at 30 MB: the costly case, where what
#            changed is most of the document), against a store + db holding day D
#   daily    the same, revisions only in the last DAILY_WINDOW (30) days, as late reports come
#            upstream: a new date per record and a few hundred changed values (the usual day)
# (changed and daily reset to day D before each run), each RUNS times, printed as median wall s, median CPU s (user + sys), median max RSS MB
# (/usr/bin/time -v) and wall ms per MB of the file. With LIMIT_MB (512) > 0, the changed run
# of the largest size runs once more inside a memory cgroup of LIMIT_MB (cgroup v2
# `memory.max` or v1 `memory.limit_in_bytes`, whichever this machine mounts; no swap here, so
# going over the limit is an OOM kill) and its exit status is printed.
#
# Then, with SMALL (1000000) > 0: SMALL small records (`{"country":{"key":"k…"},"n":…}`, about
# 27 bytes each), all new, into an empty store: the per-record overhead alone.
#
# Then, with PYTHON_BASELINE=1 (default) and the smallest size: scripts/baseline.py (requests +
# json + jsonpatch, files out; what our users run today) on the same changed day, for the
# side-by-side ratio.
#
# Environment: BENCH_DIR (/tmp/snapsync-bench-memory), SIZES ("30 300 1000"), RUNS (3), SEED (1),
# REVISE (0.001), HABITS ("--upstream"), DAILY_WINDOW (30), LIMIT_MB (512), SMALL (1000000),
# PYTHON_BASELINE (1), SKIP_BUILD=1,
# SNAPSYNC_BIN, GEN_BIN, PYTHON (python3; needs jsonpatch for the baseline, and
# uses requests when installed: scripts/py-env.sh installs jsonpatch). Disk: about 4x the largest size.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/snapsync-bench-memory}
SIZES=${SIZES:-30 300 1000}
RUNS=${RUNS:-3}
SEED=${SEED:-1}
REVISE=${REVISE:-0.001}
HABITS=${HABITS---upstream}
DAILY_WINDOW=${DAILY_WINDOW:-30}
LIMIT_MB=${LIMIT_MB:-512}
SMALL=${SMALL:-1000000}
PYTHON_BASELINE=${PYTHON_BASELINE:-1}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SNAPSYNC=${SNAPSYNC_BIN:-$TARGET_DIR/release/snapsync}
GEN=${GEN_BIN:-$TARGET_DIR/release/snapsync-gen}
PYTHON=${PYTHON:-python3}
DATASET=covid-countries

say() { printf 'bench-memory: %s\n' "$*" >&2; }
die() { printf 'bench-memory: error: %s\n' "$*" >&2; exit 1; }

case "$RUNS" in '' | *[!0-9]* | 0) die "RUNS must be a positive integer, got '$RUNS'" ;; esac
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install time)"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  say "cargo build --release"
  (cd "$ROOT" && cargo build --release --bins) >&2
fi
[ -x "$SNAPSYNC" ] || die "no snapsync binary at $SNAPSYNC"
[ -x "$GEN" ] || die "no snapsync-gen binary at $GEN"

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
WWW=$BENCH_DIR/www TIMES=$BENCH_DIR/times LOG=$BENCH_DIR/snapsync.log
rm -rf "$WWW" "$TIMES"
mkdir -p "$WWW" "$TIMES"
: >"$LOG"

SERVER_PID=""
CGROUP=""
cleanup() {
  [ -z "$SERVER_PID" ] || { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
  [ -z "$CGROUP" ] || rmdir "$CGROUP" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$PYTHON" "$ROOT/scripts/serve.py" --dir "$WWW" --port 0 --no-validators >"$BENCH_DIR/serve.out" 2>"$BENCH_DIR/serve.err" &
SERVER_PID=$!
PORT=""
for _ in $(seq 1 100); do
  PORT=$(sed -n '1s/^PORT=\([0-9][0-9]*\)$/\1/p' "$BENCH_DIR/serve.out")
  [ -n "$PORT" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || die "serve.py exited: $(cat "$BENCH_DIR/serve.err")"
  sleep 0.1
done
[ -n "$PORT" ] || die "serve.py did not report its port"
URL=http://127.0.0.1:$PORT/data.json

# A hard link: serve.py serves no symlink that leaves its directory.
serve_file() { ln -f "$1" "$WWW/data.json"; }

# snap STORE DB [TIME_FILE]: one `snapsync run`, timed when TIME_FILE is given.
snap() {
  local store=$1 db=$2 tfile=${3:-} status=0
  local cmd=("$SNAPSYNC" run --url "$URL" --store "file://$store" --db "$db"
    --dataset "$DATASET" --key /country/key --max-bytes 4000000000 --no-progress)
  if [ -n "$tfile" ]; then
    /usr/bin/time -v -o "$tfile" "${cmd[@]}" >>"$LOG" 2>&1 || status=$?
  else
    "${cmd[@]}" >>"$LOG" 2>&1 || status=$?
  fi
  [ "$status" = 0 ] || { tail -n 5 "$LOG" >&2; die "snapsync run failed (exit $status; log $LOG)"; }
}

# medians LABEL BYTES: "wall_s cpu_s rss_mb ms_per_mb" of TIMES/LABEL-*.txt.
medians() {
  "$PYTHON" - "$TIMES" "$1" "$2" <<'EOF'
import glob, os, statistics, sys
walls, cpus, rss = [], [], []
for p in sorted(glob.glob(os.path.join(sys.argv[1], sys.argv[2] + "-*.txt"))):
    user = sys_ = 0.0
    for line in open(p):
        line = line.strip()
        if line.startswith("Elapsed (wall clock) time"):
            s = 0.0
            for part in line.rsplit(" ", 1)[1].split(":"):
                s = s * 60 + float(part)
            walls.append(s)
        elif line.startswith("User time (seconds)"):
            user = float(line.rsplit(" ", 1)[1])
        elif line.startswith("System time (seconds)"):
            sys_ = float(line.rsplit(" ", 1)[1])
        elif line.startswith("Maximum resident set size"):
            rss.append(int(line.rsplit(" ", 1)[1]) / 1024)
    cpus.append(user + sys_)
if not walls:
    sys.exit("no /usr/bin/time figures for " + sys.argv[2])
mb = int(sys.argv[3]) / 1e6
w = statistics.median(walls)
print("%.2f %.2f %.0f %.1f" % (w, statistics.median(cpus), statistics.median(rss), 1000 * w / mb))
EOF
}

# in_cgroup MB CMD...: runs CMD in a fresh memory cgroup limited to MB; prints its exit status.
in_cgroup() {
  local mb=$1 status=0
  shift
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    CGROUP=/sys/fs/cgroup/snapsync-bench-$$
    mkdir "$CGROUP" && echo $((mb * 1024 * 1024)) >"$CGROUP/memory.max" || return 99
    echo 0 >"$CGROUP/memory.swap.max" 2>/dev/null || true
  elif [ -d /sys/fs/cgroup/memory ]; then
    CGROUP=/sys/fs/cgroup/memory/snapsync-bench-$$
    mkdir "$CGROUP" && echo $((mb * 1024 * 1024)) >"$CGROUP/memory.limit_in_bytes" || return 99
  else
    return 99
  fi
  (echo "$BASHPID" >"$CGROUP/cgroup.procs" && exec "$@") || status=$?
  rmdir "$CGROUP" 2>/dev/null || true
  CGROUP=""
  return "$status"
}

printf '%-10s %-8s %10s %8s %8s %8s %9s\n' size run MB wall_s cpu_s rss_mb ms_per_mb
LARGEST="" LARGEST_NEXT="" FIRST_DAY="" FIRST_NEXT=""
for size in $SIZES; do
  countries=$((size * 250 / 30))
  # The files' names say how they were made, so a change of settings makes new ones.
  tag=$size-s$SEED-r$REVISE-w$DAILY_WINDOW$(printf '%s' "$HABITS" | tr -c 'a-z0-9.' '_')
  day=$BENCH_DIR/day-$tag.json next=$BENCH_DIR/next-$tag.json daily=$BENCH_DIR/daily-$tag.json
  if [ ! -s "$daily" ]; then
    say "generating $countries countries x 1000 days ($HABITS) and two next days"
    # shellcheck disable=SC2086 # HABITS is a list of flags
    "$GEN" --countries "$countries" --days 1000 --seed "$SEED" $HABITS --out "$day"
    # shellcheck disable=SC2086
    "$GEN" next --in "$day" --out "$next" --seed "$SEED" --revise "$REVISE" $HABITS 2>/dev/null
    # shellcheck disable=SC2086
    "$GEN" next --in "$day" --out "$daily" --seed "$SEED" --revise "$REVISE" \
      --revise-window "$DAILY_WINDOW" $HABITS 2>/dev/null
  fi
  bytes=$(wc -c <"$next")
  base=$BENCH_DIR/base-$size
  for i in $(seq 1 "$RUNS"); do
    rm -rf "$base" && mkdir -p "$base"
    serve_file "$day"
    snap "$base/store" "$base/db" "$TIMES/first-$size-$i.txt"
  done
  for run in changed daily; do
    if [ "$run" = changed ]; then serve_file "$next"; else serve_file "$daily"; fi
    for i in $(seq 1 "$RUNS"); do
      rm -rf "$BENCH_DIR/run" && cp -a "$base" "$BENCH_DIR/run"
      snap "$BENCH_DIR/run/store" "$BENCH_DIR/run/db" "$TIMES/$run-$size-$i.txt"
    done
  done
  for run in first changed daily; do
    read -r w c r m <<<"$(medians "$run-$size" "$bytes")"
    printf '%-10s %-8s %10.1f %8s %8s %8s %9s\n' "${size}MB" "$run" "$(echo "$bytes / 1000000" | bc -l)" "$w" "$c" "$r" "$m"
  done
  LARGEST=$size LARGEST_NEXT=$next
  [ -n "$FIRST_DAY" ] || FIRST_DAY=$day FIRST_NEXT=$next
done

if [ "$LIMIT_MB" -gt 0 ] && [ -n "$LARGEST" ]; then
  rm -rf "$BENCH_DIR/run" && cp -a "$BENCH_DIR/base-$LARGEST" "$BENCH_DIR/run"
  serve_file "$LARGEST_NEXT"
  status=0
  in_cgroup "$LIMIT_MB" "$SNAPSYNC" run --url "$URL" --store "file://$BENCH_DIR/run/store" \
    --db "$BENCH_DIR/run/db" --dataset "$DATASET" --key /country/key --max-bytes 4000000000 \
    --no-progress >>"$LOG" 2>&1 || status=$?
  case $status in
    0) verdict="completed" ;;
    99) verdict="no memory cgroup on this machine" ;;
    137) verdict="killed (OOM)" ;;
    *) verdict="failed (exit $status)" ;;
  esac
  printf '%-10s %-8s under a %d MB memory cgroup: %s\n' "${LARGEST}MB" changed "$LIMIT_MB" "$verdict"
fi

if [ "$SMALL" -gt 0 ]; then
  small=$BENCH_DIR/small-$SMALL.json
  [ -s "$small" ] || "$PYTHON" - "$SMALL" "$small" <<'EOF'
import random, sys
n, out = int(sys.argv[1]), sys.argv[2]
rnd = random.Random(1)
with open(out, "w") as f:
    f.write("[")
    for i in range(n):
        f.write("%s{\"country\":{\"key\":\"k%07d\"},\"n\":%d}" % ("," if i else "", i, rnd.randrange(1000)))
    f.write("]")
EOF
  serve_file "$small"
  for i in $(seq 1 "$RUNS"); do
    rm -rf "$BENCH_DIR/small" && mkdir -p "$BENCH_DIR/small"
    snap "$BENCH_DIR/small/store" "$BENCH_DIR/small/db" "$TIMES/small-$i.txt"
  done
  read -r w c r m <<<"$(medians small "$(wc -c <"$small")")"
  printf '%-10s %-8s %10.1f %8s %8s %8s %9s\n' "${SMALL}rec" first "$(echo "$(wc -c <"$small") / 1000000" | bc -l)" "$w" "$c" "$r" "$m"
fi

if [ "$PYTHON_BASELINE" = 1 ]; then
  size=${SIZES%% *}
  "$PYTHON" -c 'import jsonpatch' 2>/dev/null ||
    die "the Python baseline needs jsonpatch (eval \"\$(bash scripts/py-env.sh)\")"
  for i in $(seq 1 "$RUNS"); do
    out=$BENCH_DIR/py && rm -rf "$out" && mkdir -p "$out"
    serve_file "$FIRST_DAY"
    "$PYTHON" "$ROOT/scripts/baseline.py" "$URL" "$out" >>"$LOG" 2>&1
    serve_file "$FIRST_NEXT"
    /usr/bin/time -v -o "$TIMES/python-$i.txt" "$PYTHON" "$ROOT/scripts/baseline.py" "$URL" "$out" >>"$LOG" 2>&1
  done
  read -r w c r m <<<"$(medians python "$(wc -c <"$FIRST_NEXT")")"
  printf '%-10s %-8s %10s %8s %8s %8s %9s   (scripts/baseline.py)\n' "${size}MB" python "" "$w" "$c" "$r" "$m"
fi
