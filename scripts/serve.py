#!/usr/bin/env python3
"""Tiny loopback HTTP file server for benchmarks and manual tests (stdlib only).

    python3 scripts/serve.py --dir DIR [--port P] [--bind 127.0.0.1] [--no-validators]

With --port 0 (the default) the OS picks a free port. The first stdout line is always
`PORT=<n>` (flushed), so a script can read it. Files are served with Content-Length, a strong
ETag (sha256 of the content, cached by path, mtime and size), Last-Modified, and
If-None-Match / If-Modified-Since answered with 304. --no-validators sends neither ETag nor
Last-Modified and ignores conditional headers. GET and HEAD only; request logs are off unless
--verbose.
"""

import argparse
import email.utils
import hashlib
import os
import sys
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 1 << 20


class EtagCache:
    """sha256 ETags keyed by (path, mtime_ns, size)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._cache = {}

    def get(self, path, st):
        key = (path, st.st_mtime_ns, st.st_size)
        with self._lock:
            tag = self._cache.get(key)
        if tag is None:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(CHUNK), b""):
                    h.update(chunk)
            tag = '"%s"' % h.hexdigest()
            with self._lock:
                # Forget older versions of the same path.
                for k in [k for k in self._cache if k[0] == path]:
                    del self._cache[k]
                self._cache[key] = tag
        return tag


def make_handler(root, validators, verbose, etags):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "snapsync-serve/1"

        def log_message(self, fmt, *args):
            if verbose:
                sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

        def _resolve(self):
            path = urllib.parse.urlsplit(self.path).path
            rel = urllib.parse.unquote(path).lstrip("/")
            full = os.path.realpath(os.path.join(root, rel))
            if full != root and not full.startswith(root + os.sep):
                return None
            return full

        def _error(self, status):
            body = ("%d %s\n" % (status.value, status.phrase)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            full = self._resolve()
            if full is None or not os.path.isfile(full):
                return self._error(HTTPStatus.NOT_FOUND)
            try:
                f = open(full, "rb")
            except OSError:
                return self._error(HTTPStatus.FORBIDDEN)
            with f:
                st = os.fstat(f.fileno())
                headers = []
                if validators:
                    etag = etags.get(full, st)
                    last_modified = email.utils.formatdate(st.st_mtime, usegmt=True)
                    headers = [("ETag", etag), ("Last-Modified", last_modified)]
                    if self._not_modified(etag, st.st_mtime):
                        self.send_response(HTTPStatus.NOT_MODIFIED)
                        for k, v in headers:
                            self.send_header(k, v)
                        self.end_headers()
                        return
                self.send_response(HTTPStatus.OK)
                ctype = "application/json" if full.endswith(".json") else "application/octet-stream"
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(st.st_size))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                if self.command == "HEAD":
                    return
                remaining = st.st_size
                while remaining > 0:
                    chunk = f.read(min(CHUNK, remaining))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    remaining -= len(chunk)

        def _not_modified(self, etag, mtime):
            inm = self.headers.get("If-None-Match")
            if inm is not None:
                tags = [t.strip() for t in inm.split(",")]
                # Weak comparison, as RFC 9110 asks for If-None-Match.
                return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)
            ims = self.headers.get("If-Modified-Since")
            if ims:
                try:
                    since = email.utils.parsedate_to_datetime(ims).timestamp()
                except (TypeError, ValueError, IndexError, OverflowError):
                    return False
                return int(mtime) <= since
            return False

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="directory to serve")
    ap.add_argument("--port", type=int, default=0, help="port (0: pick a free one)")
    ap.add_argument("--bind", default="127.0.0.1", help="address (default 127.0.0.1)")
    ap.add_argument("--no-validators", action="store_true", help="no ETag/Last-Modified, no 304")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = ap.parse_args()

    root = os.path.realpath(args.dir)
    if not os.path.isdir(root):
        ap.error("--dir %s is not a directory" % args.dir)
    handler = make_handler(root, not args.no_validators, args.verbose, EtagCache())
    server = ThreadingHTTPServer((args.bind, args.port), handler)
    server.daemon_threads = True
    print("PORT=%d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
