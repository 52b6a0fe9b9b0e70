#!/usr/bin/env bash
# Benchmark: a source that never stops sending must be cut off at the byte limit, without
# snapsync buffering more than the limit.
#
# Serves an endless chunked JSON body ("[0,0,0,...") from a python3 stdlib server on
# 127.0.0.1, runs `snapsync run --max-bytes LIMIT` against it under `/usr/bin/time -v`, and
# prints the summary line, the bytes the server managed to send before snapsync hung up, the
# wall time and the peak RSS. Fails unless the run failed with the "larger than the limit"
# error and peak RSS stayed under MAX_RSS_MB.
#
# Usage: scripts/bench-endless.sh [LIMIT_BYTES]   (default 100000000; MAX_RSS_MB=200)
set -euo pipefail

LIMIT=${1:-100000000}
MAX_RSS_MB=${MAX_RSS_MB:-200}
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/time ]; then
    echo "installing GNU time (Debian package 'time')" >&2
    apt-get install -y time >/dev/null || { apt-get update >/dev/null && apt-get install -y time >/dev/null; }
fi

cargo build --release --quiet
BIN=target/release/snapsync

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Streams "[0,0,0,..." forever in 64 KiB chunks; on disconnect writes the body bytes it sent.
cat >"$WORK/server.py" <<'EOF'
import http.server, socketserver, sys

SENT_FILE = sys.argv[1]
CHUNK = b"0," * 32768


class Endless(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        sent = 0
        try:
            first = b"[" + CHUNK[1:]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(first), first))
            sent += len(first)
            frame = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
            while sent < 50 * 1000 * 1000 * 1000:  # bounded: stops by itself after 50 GB
                self.wfile.write(frame)
                sent += len(CHUNK)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with open(SENT_FILE, "w") as f:
                f.write(str(sent))

    def log_message(self, *args):
        pass


with socketserver.TCPServer(("127.0.0.1", 0), Endless) as srv:
    print(srv.server_address[1], flush=True)
    srv.handle_request()
EOF

python3 "$WORK/server.py" "$WORK/sent" >"$WORK/port" &
SERVER_PID=$!
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.05; done
PORT=$(cat "$WORK/port")

set +e
/usr/bin/time -v -o "$WORK/time" env -u SNAPSYNC_CONFIG \
    "$BIN" run --url "http://127.0.0.1:$PORT/endless.json" --max-bytes "$LIMIT" --retries 0 \
    --store "file://$WORK/store" --db "$WORK/state.db" --log-format logfmt \
    >"$WORK/stdout" 2>"$WORK/stderr"
CODE=$?
set -e
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=

SENT=$(cat "$WORK/sent" 2>/dev/null || echo "?")
WALL=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$WORK/time")
RSS_KB=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time")
RSS_MB=$((RSS_KB / 1024))

echo "summary:        $(tail -n 1 "$WORK/stdout")"
echo "exit status:    $CODE"
echo "limit:          $LIMIT bytes"
echo "server sent:    $SENT body bytes before the client hung up (includes socket buffers)"
echo "wall time:      $WALL"
echo "peak RSS:       $RSS_MB MB ($RSS_KB kB)"

if [ "$CODE" -ne 1 ] || ! grep -q "body is larger than the limit of $LIMIT bytes" "$WORK/stdout"; then
    echo "FAIL: expected exit 1 and 'body is larger than the limit of $LIMIT bytes'" >&2
    cat "$WORK/stderr" >&2
    exit 1
fi
if [ "$RSS_MB" -ge "$MAX_RSS_MB" ]; then
    echo "FAIL: peak RSS $RSS_MB MB is not under $MAX_RSS_MB MB" >&2
    exit 1
fi
echo "OK: aborted at the limit, peak RSS under $MAX_RSS_MB MB"
