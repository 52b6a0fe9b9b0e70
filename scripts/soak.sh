#!/usr/bin/env bash
# The reliability suite, longer than CI runs it:
#   scripts/soak.sh [--only TEST,...] [--stress N] [KILL_TRIALS] [ROUNDS] [CASES] [FUZZ_SECS]
#   KILL_TRIALS  SIGKILL trials per store (CI: 16)                default 100
#   ROUNDS       rounds of 4 concurrent writers per store (CI: 20)  default 100
#   CASES        proptest cases per fuzz property (CI: 768-1024)   default 20000
#   FUZZ_SECS    seconds of cargo-fuzz per target, 0 to skip       default 0
#                (needs a nightly toolchain and cargo-fuzz; corpus in fuzz/corpus/TARGET)
#   --only       run only these modules of the integration test binary (of fault_injection,
#                kills, concurrency, janitor, local_state, security, fuzz_props), e.g.
#                `--only concurrency`
#   The janitor races publish ROUNDS versions per case instead of CI's 30.
#   --stress N   keep N busy processes running while the concurrency rounds run (default: one
#                per core, `nproc`; 0 for none): a lost race must end changed/unchanged however
#                the writers are scheduled, and CPU load is what shuffles their timing. Uses
#                stress-ng when installed, else shell busy loops; always stopped at exit.
# Starts the loopback S3 server like scripts/test, runs the fault matrix, the kill trials, the
# concurrency rounds, the local-state and security tests and the fuzz properties, and prints
# each test's figures (the lines the tests write to stderr), then a summary.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TESTS="fault_injection kills concurrency janitor local_state security fuzz_props"
STRESS=$(nproc 2>/dev/null || echo 2)
while [ $# -gt 0 ]; do
  case "$1" in
    --only) TESTS=${2//,/ }; shift 2 ;;
    --stress) STRESS=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
# A misspelt name would filter out every test and pass; refuse it like cargo refused a missing
# test binary.
for t in $TESTS; do
  if [ ! -f "tests/integration/$t.rs" ]; then
    echo "soak.sh: no test module $t (tests/integration/$t.rs)" >&2
    exit 2
  fi
done
KILL_TRIALS=${1:-100}
ROUNDS=${2:-100}
CASES=${3:-20000}
FUZZ_SECS=${4:-0}
SEED=${SNAPSYNC_KILL_SEED:-$(date +%s)}

# The CPU load: pids of what this script started, and only those, are stopped.
stress_pids=()
start_stress() {
  [ "$STRESS" -gt 0 ] || return 0
  if command -v stress-ng >/dev/null; then
    stress-ng --cpu "$STRESS" --quiet &
    stress_pids+=($!)
  else
    for _ in $(seq "$STRESS"); do
      ( while :; do :; done ) &
      stress_pids+=($!)
    done
  fi
  echo "   (CPU stress: $STRESS busy processes, pids ${stress_pids[*]})" >&2
}
stop_stress() {
  for pid in "${stress_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  stress_pids=()
}
trap stop_stress EXIT

eval "$(bash scripts/s3-up.sh)"
export S3_ENDPOINT S3_REGION S3_BUCKET AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
export AWS_REGION="$S3_REGION" AWS_EC2_METADATA_DISABLED=true
export SNAPSYNC_KILL_TRIALS=$KILL_TRIALS SNAPSYNC_KILL_SEED=$SEED
export SNAPSYNC_CONCURRENCY_ROUNDS=$ROUNDS SNAPSYNC_JANITOR_VERSIONS=$ROUNDS PROPTEST_CASES=$CASES

log=$(mktemp -t snapsync-soak.XXXXXX)
start=$(date +%s)
status=0
for t in $TESTS; do
  echo "== $t" >&2
  stressed=0
  if { [ "$t" = concurrency ] || [ "$t" = janitor ]; } && [ "$STRESS" -gt 0 ]; then
    # Built before the load starts: the load is for the writers, not the compiler.
    cargo test --locked --test integration --no-run 2>&1 | tail -1 >&2
    start_stress
    stressed=1
  fi
  # One test binary for all of tests/integration/; the module path picks this suite's tests.
  if ! cargo test --locked --test integration -- "integration::$t::" --nocapture 2>&1 | tee -a "$log" \
      | grep -E '^(fault matrix .*points|kills |concurrency |janitor |security: )|^test result|panicked' >&2; then
    status=1
  fi
  if [ "$stressed" = 1 ]; then
    stop_stress
  fi
done

if [ "$FUZZ_SECS" -gt 0 ]; then
  for target in delta_apply canonical config; do
    mkdir -p "fuzz/corpus/$target"
    cp -n fuzz/seeds/"$target"/* "fuzz/corpus/$target/" 2>/dev/null || true
    echo "== cargo fuzz $target (${FUZZ_SECS}s)" >&2
    if (cd fuzz && cargo +nightly fuzz run -s none "$target" "corpus/$target" -- \
          -max_total_time="$FUZZ_SECS" -max_len=4096 -rss_limit_mb=2048) > "$log.fuzz" 2>&1; then
      runs=$(grep -oE '^#[0-9]+' "$log.fuzz" | tail -1)
      echo "fuzz $target: ${FUZZ_SECS}s, ${runs#\#} executions, 0 crashes, corpus $(ls "fuzz/corpus/$target" | wc -l) inputs" | tee -a "$log" >&2
    else
      echo "fuzz $target: FAILED (see fuzz/artifacts/$target)" | tee -a "$log" >&2
      tail -30 "$log.fuzz" >&2
      status=1
    fi
  done
fi

echo >&2
echo "soak: $TESTS; seed $SEED, $KILL_TRIALS kill trials/store, $ROUNDS rounds/store (CPU stress: $STRESS), $CASES cases/property, ${FUZZ_SECS}s fuzz/target, $(( $(date +%s) - start ))s" >&2
grep -E '^(fault matrix .*points|kills |concurrency |janitor |security: |fuzz )' "$log" | sed 's/^/  /' >&2
passed=$(grep -oE '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -E '^test result:' "$log" | grep -oE '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
echo "soak: $passed passed, $failed failed" >&2
if [ "$status" != 0 ]; then
  echo "soak: the whole output is in $log" >&2
  rm -f "$log.fuzz"
else
  rm -f "$log" "$log.fuzz"
fi
exit "$status"
