#!/usr/bin/env bash
# Stop the SeaweedFS server started by scripts/s3-up.sh (reads its pid file). Fine if it is not running.
# Uses the same S3_ROOT default as s3-up.sh; the data directory is kept (set S3_WIPE=1 to delete it).
set -euo pipefail
S3_ROOT=${S3_ROOT:-${TMPDIR:-/tmp}/ci-s3}
pidfile="$S3_ROOT/weed.pid"

ours() {  # the pid is alive and is our `weed mini` (a zombie's cmdline is empty, so it counts as gone)
  [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -q 'weed .*mini -dir='
}

pid=$(cat "$pidfile" 2>/dev/null || true)
if [ -n "$pid" ] && ours "$pid"; then
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do  # up to 10 s for a clean shutdown
    ours "$pid" || break
    sleep 0.2
  done
  if ours "$pid"; then
    echo "seaweedfs (pid $pid) did not stop on TERM; sending KILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  echo "stopped seaweedfs (pid $pid)" >&2
else
  echo "seaweedfs not running${pid:+ (stale pid $pid)}" >&2
fi
rm -f "$pidfile"
if [ "${S3_WIPE:-0}" = 1 ]; then
  rm -rf "$S3_ROOT/data"
fi
