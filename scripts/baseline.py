#!/usr/bin/env python3
"""What our users run today, for the side-by-side figures of scripts/bench-memory.sh.

    python3 scripts/baseline.py URL OUT_DIR

The plain job the course assignment grows into: fetch the JSON with requests, compare it with
the last version kept in OUT_DIR, and when it changed write a dated gzip snapshot, latest.json
and a JSON Patch delta (jsonpatch.make_patch) from the previous version. Files stand in for
boto3's uploads, so the figure is the job's own work, not the network's. Keys are sorted and
whitespace dropped (json.dumps(sort_keys=True, separators=...)), so unchanged data is not a
new version; records are left where the source put them, as such scripts do.
"""

import datetime
import gzip
import hashlib
import json
import os
import sys
import urllib.request

import jsonpatch

try:
    import requests
except ImportError:  # the same fetch without it (scripts/py-env.sh does not install requests)
    requests = None


def canonical(doc):
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def main():
    url, out = sys.argv[1], sys.argv[2]
    if requests is not None:
        resp = requests.get(url, timeout=60)
        resp.raise_for_status()
        new = resp.json()
    else:
        with urllib.request.urlopen(url, timeout=60) as resp:
            new = json.loads(resp.read())
    body = canonical(new)
    sha = hashlib.sha256(body).hexdigest()
    latest = os.path.join(out, "latest.json")
    prev = None
    if os.path.exists(latest):
        with open(latest, "rb") as f:
            prev_body = f.read()
        if hashlib.sha256(prev_body).hexdigest() == sha:
            print("unchanged")
            return
        prev = json.loads(prev_body)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%S.%fZ")
    with gzip.open(os.path.join(out, f"{stamp}-{sha[:12]}.json.gz"), "wb", compresslevel=1) as f:
        f.write(body)
    if prev is not None:
        patch = jsonpatch.make_patch(prev, new)
        with gzip.open(os.path.join(out, f"{stamp}-{sha[:12]}.delta.json.gz"), "wt", compresslevel=1) as f:
            f.write(patch.to_string())
    tmp = latest + ".tmp"
    with open(tmp, "wb") as f:
        f.write(body)
    os.replace(tmp, latest)
    print("changed", sha)


if __name__ == "__main__":
    main()
