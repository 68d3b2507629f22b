"""One side of a timed snapshot exchange across a link (benchmarks/interconnect.py).

    python -m experiments.harness.exchange_worker publish --weights=DIR --directory=DIR \
        --bind=10.77.0.1:8700
    python -m experiments.harness.exchange_worker fetch --peer=http://10.77.0.1:8700 \
        --directory=DIR

Each reads one step number per stdin line and answers one JSON line. The publisher writes
the weights of the snapshot in ``--weights`` as that step with the package's publisher
(``PeerPublisher``: checkpoint files, fsync, manifest last) into ``--directory``, which it
serves over HTTP, and reports the seconds it took. The fetcher polls the publisher's
manifest until that step is there, copies its files across the link
(``snapshot_relay.fetch_newest``), then loads them with the package's verified read
(``read_latest``: checksums, decode), reporting bytes and the seconds of each part.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from experiments.harness import snapshot_relay


def publish(args) -> None:
    from tf_codistill.exchange import snapshots

    snapshot = snapshots.read_latest(args.weights)
    if snapshot is None:
        raise SystemExit(f"no published snapshot in {args.weights}")
    named = list(zip(snapshot.names, snapshot.weights))
    publisher = snapshots.PeerPublisher(args.directory, max_to_keep=2)
    host, port = args.bind.rsplit(":", 1)
    snapshot_relay.serve(args.directory, host, int(port))
    _answer({"ready": True})
    for line in sys.stdin:
        step = int(line)
        start = time.perf_counter()
        prefix = publisher.publish(step, named)
        seconds = time.perf_counter() - start
        size = sum(os.path.getsize(os.path.join(args.directory, name))
                   for name in os.listdir(args.directory)
                   if name.startswith(os.path.basename(prefix) + "."))
        _answer({"step": step, "publish_s": seconds, "snapshot_bytes": size})


def fetch(args) -> None:
    from tf_codistill.exchange import snapshots

    _answer({"ready": True})
    known = None
    for line in sys.stdin:
        step, polls, start = int(line), 0, time.perf_counter()
        fetched = None
        while fetched is None or fetched["step"] < step:
            polls += 1
            fetched = snapshot_relay.fetch_newest(args.peer, args.directory, known)
            if fetched is None or fetched["step"] < step:
                time.sleep(0.01)
        known = fetched["step"]
        loaded = snapshots.read_latest(args.directory)
        _answer({"step": loaded.step, "polls": polls, "poll_s": fetched["poll_seconds"],
                 "transfer_s": fetched["seconds"] - fetched["poll_seconds"],
                 "link_bytes": fetched["bytes"], "load_s": loaded.read_seconds,
                 "wait_s": time.perf_counter() - start - loaded.read_seconds})


def _answer(record: dict) -> None:
    print(json.dumps(record), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    roles = parser.add_subparsers(dest="role", required=True)
    publisher = roles.add_parser("publish")
    publisher.add_argument("--weights", required=True, help="A published/ directory to copy.")
    publisher.add_argument("--directory", required=True, help="Where to publish and serve.")
    publisher.add_argument("--bind", required=True, help="host:port to serve it on.")
    fetcher = roles.add_parser("fetch")
    fetcher.add_argument("--peer", required=True, help="http://host:port of the publisher.")
    fetcher.add_argument("--directory", required=True, help="The local copy to load from.")
    args = parser.parse_args(argv)
    {"publish": publish, "fetch": fetch}[args.role](args)


if __name__ == "__main__":
    main()
