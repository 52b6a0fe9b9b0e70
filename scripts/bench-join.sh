#!/usr/bin/env bash
# Time and memory of a join with a spreadsheet, end to end (`snapsync run`, release build).
#
#   scripts/bench-join.sh
#
# Writes a ROWS-row table shaped like the course's InfoPaisosExtra sheet (a name column, 4 text
# columns, 5 numeric columns with NA cells) as .csv, .xlsx (openpyxl), .xls (xlwt, at most 65535
# rows) and .ods, and a dataset of ROWS records whose keys are the rows' names (slugged), each
# with DAYS dates. Each case is a first run (fresh store and database, so a version is made),
# timed RUNS times with /usr/bin/time -v; printed: median wall seconds, median CPU seconds
# (user+sys), median max RSS in MB:
#   no_join     the dataset alone (cumulative dropped)
#   join_csv    the same plus the join of the table as CSV
#   join_xlsx   ... as .xlsx
#   join_xls    ... as .xls
#   join_ods    ... as .ods
# then each join's cost over no_join.
#
# Environment: ROWS (10000), DAYS (30), RUNS (5), BENCH_DIR (/tmp/snapsync-bench-join),
# SKIP_BUILD=1 (use the binary already built), SNAPSYNC_BIN.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROWS=${ROWS:-10000}
DAYS=${DAYS:-30}
RUNS=${RUNS:-5}
BENCH_DIR=${BENCH_DIR:-/tmp/snapsync-bench-join}
SNAPSYNC=${SNAPSYNC_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/snapsync}

say() { printf 'bench-join: %s\n' "$*" >&2; }
die() { printf 'bench-join: error: %s\n' "$*" >&2; exit 1; }
case "$RUNS" in '' | *[!0-9]* | 0) die "RUNS must be a positive integer, got '$RUNS'" ;; esac
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install time)"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  say "cargo build --release"
  (cd "$ROOT" && cargo build --release --bins) >&2
fi
[ -x "$SNAPSYNC" ] || die "no snapsync binary at $SNAPSYNC"
eval "$(bash "$ROOT/scripts/py-env.sh")"
PY=$SNAPSYNC_TEST_PYTHON

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
cd "$BENCH_DIR"

say "writing a $ROWS-row table (csv, xlsx, xls, ods) and a $ROWS-record dataset of $DAYS days"
ROWS=$ROWS DAYS=$DAYS "$PY" - "$ROOT/tests/fixtures/workbooks.py" <<'EOF'
import csv, json, os, random, subprocess, sys
rows, days = int(os.environ["ROWS"]), int(os.environ["DAYS"])
rnd = random.Random(1)
header = ["COUNTRY", "Continent", "Country_Clasification", "Government_Type", "Development_Status",
          "Corruption_preception", "GDP_per_unit_of_energy_use_constant", "Population_total",
          "Urban_population_PC_of_total_population", "Land_area"]
def na(p, v):
    return "NA" if rnd.random() < p else v
table = [header]
for i in range(rows):
    table.append([f"Country {i:05d}", rnd.choice(["Africa", "Asia", "Europe", "Oceania"]),
                  rnd.choice(["High income", "Low income"]), rnd.choice(["Full democracy", "Authoritarian"]),
                  rnd.choice(["Developed", "Developing"]), na(0.1, rnd.randint(10, 90)),
                  na(0.3, round(rnd.uniform(2, 20), 2)), rnd.randint(10_000, 100_000_000),
                  na(0.05, round(rnd.uniform(10, 100), 3)), round(rnd.uniform(1, 1e6), 1)])
with open("table.csv", "w", newline="") as f:
    csv.writer(f).writerows(table)
spec = json.dumps({"sheets": [{"name": "Database_option2", "rows": table}]})
for fmt in ["xlsx", "ods"] + (["xls"] if rows < 65535 else []):
    subprocess.run([sys.executable, sys.argv[1], "write", fmt, f"table.{fmt}"], input=spec.encode(), check=True)
recs = []
for i in range(rows):
    dates = {f"2020-03-{d + 1:02d}" if d < 31 else f"2020-{4 + (d - 31) // 30:02d}-{(d - 31) % 30 + 1:02d}":
             {"new": {"cases": rnd.randint(0, 500), "deaths": rnd.randint(0, 20)},
              "cumulative": {"cases": rnd.randint(0, 9999), "deaths": rnd.randint(0, 999)}} for d in range(days)}
    recs.append({"country": {"key": f"country-{i:05d}", "name": f"Country {i:05d}"}, "dates": dates})
with open("stats.json", "w") as f:
    json.dump(recs, f)
EOF
for f in stats.json table.csv table.xlsx table.xls table.ods; do
  [ -f "$f" ] && say "$f: $(wc -c <"$f") bytes"
done

config() { # config NAME [TABLE]
  {
    printf 'db = "%s/db/snapsync.db"\n[store]\nurl = "file://%s/store"\n' "$BENCH_DIR" "$BENCH_DIR"
    printf '[[dataset]]\nname = "bench"\nurl = "file://%s/stats.json"\nkey = "/country/key"\n' "$BENCH_DIR"
    printf '[[dataset.transform]]\ndrop = ["/*/dates/*/cumulative"]\n'
    if [ -n "${2:-}" ]; then
      # snake_case names the key column COUNTRY "country"
      printf '[[dataset.transform]]\n[dataset.transform.join]\nsource = "%s"\nkey = "country"\n' "$2"
      printf 'on = "/country/key"\ninto = "/country"\ncolumn_names = "snake_case"\n'
    fi
  } >"$1.toml"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

results=()
for case in no_join join_csv join_xlsx join_xls join_ods; do
  ext=${case#join_}
  if [ "$case" = no_join ]; then config "$case"; else
    [ -f "table.$ext" ] || { say "skipping $case (no table.$ext)"; continue; }
    config "$case" "table.$ext"
  fi
  : >"$case.wall"; : >"$case.cpu"; : >"$case.rss"
  for _ in $(seq "$RUNS"); do
    rm -rf store db && mkdir -p db
    /usr/bin/time -v -o time.txt "$SNAPSYNC" --config "$case.toml" run >run.out 2>run.err ||
      { cat run.out run.err >&2; die "$case failed"; }
    grep -q ' changed' run.out || { cat run.out >&2; die "$case: not a changed run"; }
    awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' time.txt >>"$case.wall"
    awk -F': ' '/User time|System time/ {s += $2} END {print s}' time.txt >>"$case.cpu"
    awk -F': ' '/Maximum resident set size/ {print $2 / 1024}' time.txt >>"$case.rss"
  done
  w=$(median <"$case.wall"); c=$(median <"$case.cpu"); r=$(median <"$case.rss")
  printf '%-10s wall_s=%s cpu_s=%s max_rss_mb=%.1f (median of %s; %s)\n' "$case" "$w" "$c" "$r" "$RUNS" "$(tail -1 run.out)"
  results+=("$case $w $c $r")
done
base=$(printf '%s\n' "${results[@]}" | awk '$1 == "no_join" {print $2, $3, $4}')
printf '%s\n' "${results[@]}" | awk -v base="$base" 'BEGIN {split(base, b, " ")}
  $1 != "no_join" {printf "%-10s join cost: wall +%.3f s, cpu +%.3f s, rss +%.1f MB\n", $1, $2 - b[1], $3 - b[2], $4 - b[3]}'
