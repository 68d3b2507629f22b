"""Runs the N groups of a job as N local processes sharing one model_dir.

Each group is the same command with ``--group=k`` added; its output is echoed
with a ``[group k]`` prefix. The groups share nothing but the model_dir, where
they publish and poll checkpoints, exactly as on a cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

from tf_codistill import config as config_lib


def group_command(argv: list[str], group: int) -> list[str]:
    return [sys.executable, "-m", "tf_codistill.train", *argv, f"--group={group}"]


def run_local_groups(argv: list[str], config: config_lib.RunConfig) -> int:
    """Starts every group, waits for all, prints the summary; returns an exit code."""
    processes = [subprocess.Popen(group_command(argv, g), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
                 for g in range(config.num_groups)]
    echoes = [threading.Thread(target=_echo, args=(g, p.stdout), daemon=True)
              for g, p in enumerate(processes)]
    for thread in echoes:
        thread.start()
    try:
        codes = [p.wait() for p in processes]
    except KeyboardInterrupt:
        for p in processes:
            p.send_signal(signal.SIGTERM)
        raise
    for thread in echoes:
        thread.join()
    failed = [g for g, code in enumerate(codes) if code != 0]
    if failed:
        print(f"groups {failed} failed; rerun the same command to resume them.", flush=True)
        return 1
    print(summary(config), flush=True)
    return 0


def summary(config: config_lib.RunConfig) -> str:
    from tf_codistill.train_lib import summary_table
    metrics = []
    for g in range(config.num_groups):
        with open(os.path.join(config_lib.group_dir(config.model_dir, g), "metrics.json")) as f:
            metrics.append(json.load(f))
    return (summary_table(metrics) + f"\noutputs: {config.model_dir}/group_<k>/ "
            "(checkpoints, published, logs, metrics.json, export)")


def _echo(group, stream):
    for line in stream:
        sys.stdout.write(f"[group {group}] {line}")
        sys.stdout.flush()
