"""Carries a group's published snapshots to a peer over a network link, as HTTP.

The two "machines" of benchmarks/interconnect.py share one filesystem, so a peer polling
the writer's published/ directory would read it from disk and never touch the link. A relay
runs beside each group instead: it serves the group's own published/ directory over HTTP on
its namespace's address, and mirrors the peer's (polling its manifest.json, fetching the
files of its newest snapshot, then writing the manifest last) into the local directory
where the group's poller looks for that peer. Every byte of a peer's snapshot crosses the
link once; the group's own verified read (CRC32C against the manifest) then loads it from
the local copy, exactly as it would from shared storage.

    python -m experiments.harness.snapshot_relay --serve=DIR --bind=10.77.0.1:8700 \
        --peer=http://10.77.0.2:8700 --mirror=DIR

prints one JSON line per snapshot it fetched: step, bytes, seconds of the manifest poll and of
the whole fetch (poll included).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

MANIFEST = "manifest.json"  # tf_codistill.exchange.snapshots.MANIFEST_NAME, without TensorFlow


def serve(directory: str, host: str, port: int) -> http.server.ThreadingHTTPServer:
    """Serves ``directory`` read-only on host:port from a daemon thread."""
    os.makedirs(directory, exist_ok=True)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        (host, port), functools.partial(Quiet, directory=directory))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _get(url: str, timeout_s: float = 120.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return response.read()


def fetch_newest(peer_url: str, mirror: str, known_step: int | None) -> dict | None:
    """Copies the peer's newest snapshot if newer than ``known_step``; None if there is none.

    Files go in under temporary names and are renamed; the manifest naming only the
    snapshot now complete in ``mirror`` is written last, so a reader never sees a
    snapshot before all its files are there.
    """
    start = time.perf_counter()
    try:
        data = _get(f"{peer_url}/{MANIFEST}")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None  # the peer has published nothing yet
        raise
    poll_seconds = time.perf_counter() - start
    entries = json.loads(data)["checkpoints"]
    if not entries or (known_step is not None and entries[0]["step"] <= known_step):
        return None
    entry, moved = entries[0], len(data)
    os.makedirs(mirror, exist_ok=True)
    for file in entry["files"]:
        payload = _get(f"{peer_url}/{file['name']}")
        moved += len(payload)
        _write_atomically(os.path.join(mirror, file["name"]), payload)
    _write_atomically(os.path.join(mirror, MANIFEST),
                      json.dumps({**json.loads(data), "checkpoints": [entry]}).encode())
    return {"step": entry["step"], "bytes": moved, "poll_seconds": poll_seconds,
            "seconds": time.perf_counter() - start}


def _write_atomically(path: str, payload: bytes) -> None:
    temporary = f"{path}.relay-tmp"
    with open(temporary, "wb") as f:
        f.write(payload)
    os.replace(temporary, path)


def mirror_forever(peer_url: str, mirror: str, poll_interval_s: float, echo=print) -> None:
    """Polls the peer and mirrors each new snapshot, echoing one JSON line for it."""
    known = None
    while True:
        try:
            fetched = fetch_newest(peer_url, mirror, known)
        except (OSError, ValueError) as error:  # peer not up yet, or a torn manifest read
            fetched = None
            print(f"relay: {peer_url}: {error}", file=sys.stderr, flush=True)
        if fetched:
            known = fetched["step"]
            echo(json.dumps(fetched), flush=True)
        time.sleep(poll_interval_s)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", required=True, help="This group's published/ directory.")
    parser.add_argument("--bind", required=True, help="host:port to serve it on.")
    parser.add_argument("--peer", required=True, help="http://host:port of the peer's relay.")
    parser.add_argument("--mirror", required=True,
                        help="Where this group's poller looks for the peer's snapshots.")
    parser.add_argument("--poll_interval_s", type=float, default=0.5)
    args = parser.parse_args(argv)
    host, port = args.bind.rsplit(":", 1)
    serve(args.serve, host, int(port))
    mirror_forever(args.peer, args.mirror, args.poll_interval_s)


if __name__ == "__main__":
    main()
