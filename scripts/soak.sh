#!/usr/bin/env bash
# The reliability suite, longer than CI runs it: scripts/soak.sh [KILL_TRIALS] [ROUNDS] [CASES] [FUZZ_SECS]
#   KILL_TRIALS  SIGKILL trials per store (CI: 16)                default 100
#   ROUNDS       rounds of 4 concurrent writers per store (CI: 20)  default 100
#   CASES        proptest cases per fuzz property (CI: 768-1024)   default 20000
#   FUZZ_SECS    seconds of cargo-fuzz per target, 0 to skip       default 0
#                (needs a nightly toolchain and cargo-fuzz; corpus in fuzz/corpus/TARGET)
# Starts the loopback S3 server like scripts/test, runs the fault matrix, the kill trials, the
# concurrency rounds, the local-state and security tests and the fuzz properties, and prints
# each test's figures (the lines the tests write to stderr), then a summary.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
KILL_TRIALS=${1:-100}
ROUNDS=${2:-100}
CASES=${3:-20000}
FUZZ_SECS=${4:-0}
SEED=${SNAPSYNC_KILL_SEED:-$(date +%s)}

eval "$(bash scripts/s3-up.sh)"
export S3_ENDPOINT S3_REGION S3_BUCKET AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
export AWS_REGION="$S3_REGION" AWS_EC2_METADATA_DISABLED=true
export SNAPSYNC_KILL_TRIALS=$KILL_TRIALS SNAPSYNC_KILL_SEED=$SEED
export SNAPSYNC_CONCURRENCY_ROUNDS=$ROUNDS PROPTEST_CASES=$CASES

log=$(mktemp -t snapsync-soak.XXXXXX)
start=$(date +%s)
status=0
for t in fault_injection kills concurrency local_state security fuzz_props; do
  echo "== $t" >&2
  if ! cargo test --locked --test "$t" -- --nocapture 2>&1 | tee -a "$log" \
      | grep -E '^(fault matrix .*points|kills |concurrency |security: )|^test result|panicked' >&2; then
    status=1
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
echo "soak: seed $SEED, $KILL_TRIALS kill trials/store, $ROUNDS rounds/store, $CASES cases/property, ${FUZZ_SECS}s fuzz/target, $(( $(date +%s) - start ))s" >&2
grep -E '^(fault matrix .*points|kills |concurrency |security: |fuzz )' "$log" | sed 's/^/  /' >&2
passed=$(grep -oE '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -E '^test result:' "$log" | grep -oE '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
echo "soak: $passed passed, $failed failed" >&2
rm -f "$log" "$log.fuzz"
exit "$status"
