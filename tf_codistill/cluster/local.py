"""Runs the N groups of a job as N local processes sharing one model_dir.

Each group is ``train --config=<model_dir>/launch_config.json --group=k``: the
resolved config, not a rebuilt command line. Its output is echoed with a
``[group k]`` prefix. The groups share nothing but the model_dir, where
they publish and poll checkpoints, exactly as on a cluster.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time

import tensorflow as tf

from tf_codistill import config as config_lib
from tf_codistill.config import layout
from tf_codistill.config.layout import BASELINE
from tf_codistill.runner import summary
from tf_codistill.runner.flags import CLOSING_SUMMARY_FLAG, CONFIG_FLAG
from tf_codistill.utils import lease as lease_lib

STOP_GRACE_S = 10.0  # how long an interrupted launch lets its groups exit before killing them


def group_command(config_path: str, group: int) -> list[str]:
    """One group's train command: the resolved config file, and which group to run. The
    launcher prints the whole run's closing summary, so the groups print none."""
    return [sys.executable, "-m", "tf_codistill.train", f"--{CONFIG_FLAG}={config_path}",
            f"--group={group}", f"--no{CLOSING_SUMMARY_FLAG}"]


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


def run_local_groups(config: config_lib.RunConfig, baseline: bool = False,
                     plot_curves: bool = False) -> int:
    """Starts every group (and the baseline), waits for all, prints the summary; with
    ``plot_curves``, first scores every kept checkpoint and draws the held-out curves.

    Returns 0, or 2 when some groups were already running (their children exit 2
    because another process holds the group's lease; this launch adds nothing for
    them), or 1 when a group failed.
    """
    path = write_launch_config(config)
    commands = {g: group_command(path, g) for g in range(config.num_groups)}
    if baseline:
        commands[BASELINE] = group_command(write_launch_config(baseline_config(config)), 0)
    codes, errors = run_children(commands)
    running = {name: holder for name, code in codes.items() if code == 2
               for holder in [_holder(errors[name])] if holder is not None}
    failed = [name for name, code in codes.items() if code != 0 and name not in running]
    if running:
        print(_already_running_message(config, running), flush=True)
    if failed:
        print(f"groups {failed} failed; rerun the same command to resume them.", flush=True)
    if failed or running:
        return 1 if failed else 2
    run = summary.read_run(config, baseline)
    if plot_curves:
        from tf_codistill.runner import curves
        run = dataclasses.replace(run, curves=curves.write(run))
    print("\n".join(summary.closing_lines(run)), flush=True)
    return 0


def run_children(commands: dict) -> tuple[dict, dict]:
    """Runs every command at once, echoing its output; returns {name: exit code} and
    {name: its "error: " lines}. Interrupted (Ctrl-C), it stops them all (``stop``)
    before passing the interrupt on."""
    processes = {name: subprocess.Popen(command, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
                 for name, command in commands.items()}
    errors = {name: [] for name in processes}
    echoes = [threading.Thread(target=_echo, args=(name, p.stdout, errors[name]), daemon=True)
              for name, p in processes.items()]
    for thread in echoes:
        thread.start()
    try:
        codes = {name: p.wait() for name, p in processes.items()}
    except KeyboardInterrupt:
        stop(list(processes.values()))
        raise
    for thread in echoes:
        thread.join()
    return codes, errors


def stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM to every child still running, SIGKILL to those still alive ``STOP_GRACE_S``
    later (or at a second interrupt), and every one reaped: no group outlives the launch."""
    for p in processes:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    try:
        for p in processes:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
            p.wait()


def _holder(error_lines: list[str]) -> str | None:
    """The lease holder a child's error names, if it stopped because its group runs."""
    return next((holder for line in reversed(error_lines)
                 for holder in [lease_lib.holder_named_in(line)] if holder), None)


def _already_running_message(config, running: dict) -> str:
    """Which groups another process already runs, naming each holder; what to do."""
    holders = "; ".join(f"{_label(name)}: {holder}" for name, holder in running.items())
    names = ", ".join(_label(name) for name in running)
    verb, pronoun = ("is", "it") if len(running) == 1 else ("are", "them")
    return (f"{names} of {config.model_dir} {verb} already running ({holders}); this "
            f"launch did not start {pronoun} again. Wait for those processes to finish "
            "(each group writes group_<k>/metrics.json last), or stop them and run this "
            "command again to resume.")


def _label(name) -> str:
    return name if name == BASELINE else f"group {name}"


def _echo(name, stream, error_lines: list[str]):
    """Echoes a child's output with its label, keeping its error lines for the launcher."""
    label = _label(name)
    for line in stream:
        if line.startswith("error: "):
            error_lines.append(line)
        sys.stdout.write(f"[{label}] {line}")
        sys.stdout.flush()
