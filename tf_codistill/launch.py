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


BASELINE = "baseline"


def baseline_command(argv: list[str], config: config_lib.RunConfig) -> list[str]:
    """One plain group, no peers, in <model_dir>/baseline: synchronous SGD alone.

    It keeps constant weight decay: the schedule that offsets codistillation's
    regularization (--weight_decay_schedule) belongs to the codistilled groups.
    """
    return group_command([*argv, "--num_groups=1", "--nobaseline",
                          "--weight_decay_schedule=constant",
                          f"--model_dir={os.path.join(config.model_dir, BASELINE)}"], 0)


def run_local_groups(argv: list[str], config: config_lib.RunConfig,
                     baseline: bool = False) -> int:
    """Starts every group (and the baseline), waits for all, prints the summary."""
    commands = {g: group_command(argv, g) for g in range(config.num_groups)}
    if baseline:
        commands[BASELINE] = baseline_command(argv, config)
    processes = {name: subprocess.Popen(command, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
                 for name, command in commands.items()}
    echoes = [threading.Thread(target=_echo, args=(name, p.stdout), daemon=True)
              for name, p in processes.items()]
    for thread in echoes:
        thread.start()
    try:
        codes = {name: p.wait() for name, p in processes.items()}
    except KeyboardInterrupt:
        for p in processes.values():
            p.send_signal(signal.SIGTERM)
        raise
    for thread in echoes:
        thread.join()
    failed = [name for name, code in codes.items() if code != 0]
    if failed:
        print(f"groups {failed} failed; rerun the same command to resume them.", flush=True)
        return 1
    print(summary(config, baseline), flush=True)
    return 0


def summary(config: config_lib.RunConfig, baseline: bool = False) -> str:
    from tf_codistill.train_lib import summary_table
    directories = [config_lib.group_dir(config.model_dir, g) for g in range(config.num_groups)]
    if baseline:
        directories.append(config_lib.group_dir(os.path.join(config.model_dir, BASELINE), 0))
    metrics = []
    for directory in directories:
        with open(os.path.join(directory, "metrics.json")) as f:
            metrics.append(json.load(f))
    if baseline:
        metrics[-1]["group"] = BASELINE
    return (summary_table(metrics) + f"\noutputs: {config.model_dir}/group_<k>/ "
            "(checkpoints, published, logs, metrics.json, export)")


def _echo(name, stream):
    label = name if name == BASELINE else f"group {name}"
    for line in stream:
        sys.stdout.write(f"[{label}] {line}")
        sys.stdout.flush()
