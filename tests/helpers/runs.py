"""Starting the train command as real processes, as a user or a scheduler would."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def train_command(*flags):
    return [sys.executable, "-m", "tf_codistill.train", *flags]


def start(flags, env=None):
    environment = dict(os.environ, **(env or {}))
    return subprocess.Popen(train_command(*flags), cwd=REPO, env=environment, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(flags, group=0, count=2):
    """The ``count`` workers of one multi_worker group, each with its TF_CONFIG on a
    localhost port."""
    cluster = [f"localhost:{port}" for port in free_ports(count)]
    return [start([*flags, f"--group={group}"], env={"TF_CONFIG": json.dumps(
        {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})})
            for index in range(count)]


def run(flags, timeout=300, env=None):
    process = start(flags, env)
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def metrics(model_dir, group):
    with open(Path(model_dir) / f"group_{group}" / "metrics.json") as f:
        return json.load(f)


def wait_for(predicate, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def checkpoint_steps(model_dir, group, kind="checkpoints"):
    directory = Path(model_dir) / f"group_{group}" / kind
    return sorted(int(p.name.split("-")[1].split(".")[0]) for p in directory.glob("ckpt-*.index"))
