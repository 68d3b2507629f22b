"""Runs the N groups of a job as N local processes sharing one model_dir.

Each group is ``train --config=<model_dir>/launch_config.json --group=k``: the
resolved config, not a rebuilt command line. Its output is echoed with a
``[group k]`` prefix. The groups share nothing but the model_dir, where
they publish and poll checkpoints, exactly as on a cluster.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import threading

import tensorflow as tf

from tf_codistill.runner import config as config_lib
from tf_codistill.runner import layout
from tf_codistill.runner.flags import CONFIG_FLAG
from tf_codistill.runner.layout import BASELINE


def group_command(config_path: str, group: int) -> list[str]:
    """One group's train command: the resolved config file, and which group to run."""
    return [sys.executable, "-m", "tf_codistill.train", f"--{CONFIG_FLAG}={config_path}",
            f"--group={group}"]


def write_launch_config(config: config_lib.RunConfig) -> str:
    """Writes the resolved config the launched processes start from; returns its path."""
    path = layout.launch_config(config.model_dir)
    tf.io.gfile.makedirs(config.model_dir)
    config_lib.write_json(path, config_lib.to_dict(config))
    return path


def baseline_config(config: config_lib.RunConfig) -> config_lib.RunConfig:
    """One plain group, no peers, in <model_dir>/baseline: synchronous SGD alone.

    It keeps constant weight decay: the schedule that offsets codistillation's
    regularization (--weight_decay_schedule) belongs to the codistilled groups.
    """
    return dataclasses.replace(
        config, num_groups=1, group=0, model_dir=layout.baseline_model_dir(config.model_dir),
        trainer=dataclasses.replace(config.trainer, weight_decay_schedule="constant"))


def run_local_groups(config: config_lib.RunConfig, baseline: bool = False) -> int:
    """Starts every group (and the baseline), waits for all, prints the summary."""
    path = write_launch_config(config)
    commands = {g: group_command(path, g) for g in range(config.num_groups)}
    if baseline:
        commands[BASELINE] = group_command(write_launch_config(baseline_config(config)), 0)
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
    from tf_codistill.runner.train_lib import summary_table
    layouts = [layout.GroupLayout.of(config.model_dir, g) for g in range(config.num_groups)]
    if baseline:
        layouts.append(layout.GroupLayout.of(layout.baseline_model_dir(config.model_dir), 0))
    metrics = []
    for group in layouts:
        with tf.io.gfile.GFile(group.metrics) as f:
            metrics.append(json.load(f))
    plain = None
    if baseline:
        plain = metrics.pop()
        plain["group"] = BASELINE
    return (summary_table(metrics, plain) + f"\noutputs: {config.model_dir}/group_<k>/ "
            "(checkpoints, published, logs, metrics.json, export)")


def _echo(name, stream):
    label = name if name == BASELINE else f"group {name}"
    for line in stream:
        sys.stdout.write(f"[{label}] {line}")
        sys.stdout.flush()
