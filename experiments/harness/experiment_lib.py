"""Experiments that compare training arms side by side: train, score, plot, save.

An *arm* is one configuration of the train command, run in ``<root>/<arm name>``.
Arms shared by several experiments train once: rerunning the train command on a
finished model_dir is a no-op, so every experiment command can be run alone
and reuses what another already trained. Each curve is the held-out loss at
every kept checkpoint, all scored on one held-out stream (``evaluation``), so
arms with different data partitions are compared on the same text.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from typing import Sequence

from experiments.harness.results_paths import repo_relative
from tf_codistill import config as config_lib
from tf_codistill.runner import evaluation
from tf_codistill.config import layout


@dataclasses.dataclass(frozen=True)
class Arm:
    """One training configuration: extra train flags and the number of groups."""

    name: str
    flags: tuple[str, ...] = ()
    num_groups: int = 1

    def model_dir(self, root: str) -> str:
        return os.path.join(root, self.name)

    def group_dirs(self, root: str) -> list[str]:
        return [layout.group_dir(self.model_dir(root), g) for g in range(self.num_groups)]

    def command(self, common_flags: Sequence[str], root: str) -> list[str]:
        return [sys.executable, "-m", "tf_codistill.train", *common_flags, *self.flags,
                f"--num_groups={self.num_groups}", f"--model_dir={self.model_dir(root)}"]


def train_waves(waves: Sequence[Sequence[Arm]], common_flags: Sequence[str], root: str,
                echo=print) -> list[dict]:
    """Trains the arms wave by wave, each wave's arms at once; returns wave timings.

    The groups of one arm always run at once (they exchange checkpoints while
    training); a wave lets arms share the cores. Each arm's output goes to
    ``<root>/<arm>.log``; a failed arm stops the experiment naming its log.
    """
    os.makedirs(root, exist_ok=True)
    timings = []
    for wave in waves:
        start = time.perf_counter()
        running = []
        for arm in wave:
            log_path = os.path.join(root, f"{arm.name}.log")
            log = open(log_path, "a")  # pylint: disable=consider-using-with
            running.append((arm, log_path, log, subprocess.Popen(
                arm.command(common_flags, root), stdout=log, stderr=subprocess.STDOUT)))
        echo(f"training {[arm.name for arm in wave]} ...")
        failed = []
        for arm, log_path, log, process in running:
            if process.wait() != 0:
                failed.append(f"{arm.name} (see {log_path})")
            log.close()
        if failed:
            raise RuntimeError(f"arms failed: {failed}; rerun the experiment to resume them.")
        seconds = time.perf_counter() - start
        timings.append({"arms": [arm.name for arm in wave], "seconds": seconds})
        echo(f"  done in {seconds:.0f} s")
    return timings


def score_curves(curves: dict[str, Sequence[str]], eval_group_dir: str,
                 eval_steps: int = 0, data_overrides: dict | None = None
                 ) -> dict[str, list[dict]]:
    """{label: [{step, loss}]} for each label's group dirs (several: their ensemble).

    The held-out stream is that of ``eval_group_dir``'s config, with
    ``eval_steps`` batches (0: one whole pass) and its data section's
    ``data_overrides`` (e.g. ``{"held_out": "validation"}``).
    """
    import tensorflow as tf

    eval_config = evaluation.load_run_config(eval_group_dir)
    eval_config = dataclasses.replace(
        eval_config, trainer=dataclasses.replace(eval_config.trainer, eval_steps=eval_steps),
        data=dataclasses.replace(eval_config.data, **(data_overrides or {})))
    evaluator = evaluation.Evaluator(eval_config, tf.distribute.get_strategy())
    return {label: evaluator.curve(list(dirs)) for label, dirs in curves.items()}


def mean_curve(curves: Sequence[list[dict]]) -> list[dict]:
    """The mean loss of several curves at the steps they share (e.g. the groups of an arm)."""
    steps = sorted(set.intersection(*({p["step"] for p in c} for c in curves)))
    losses = [{p["step"]: p["loss"] for p in c} for c in curves]
    return [{"step": step, "loss": sum(c[step] for c in losses) / len(losses)}
            for step in steps]


def run_experiment(name: str, *, root: str, output_dir: str, common_flags: Sequence[str],
                   waves: Sequence[Sequence[Arm]], curves: dict[str, Sequence[str]],
                   title: str, group_means: dict[str, Sequence[str]] | None = None,
                   reference: str = "baseline") -> dict:
    """Trains what is missing, scores, writes ``<output_dir>/<name>.{json,png}``.

    ``curves`` maps labels to group dirs (several: their ensemble);
    ``group_means`` adds curves averaging scored ones (the groups of an arm),
    which then replace them in the plot and the table.
    """
    start = time.perf_counter()
    timings = train_waves(waves, common_flags, root)
    scored = score_curves(curves, curves[reference][0])
    shown = dict(scored)
    for label, members in (group_means or {}).items():
        shown[label] = mean_curve([scored[m] for m in members])
        for member in members:
            shown.pop(member)
    summary = steps_to_target(shown, reference)
    print(format_table(summary), flush=True)
    group_dirs = sorted({d for dirs in curves.values() for d in dirs})
    result = {"experiment": name, "train_flags": list(common_flags),
              "arms": {label: list(dirs) for label, dirs in curves.items()},
              "group_configs": {d: dataclasses.asdict(evaluation.load_run_config(d))
                                for d in group_dirs},
              "curves": scored, "group_means": group_means or {}, "summary": summary,
              "measured": {label: [group_measurements(d) for d in dirs]
                           for label, dirs in curves.items()},
              "training_waves": timings, "total_seconds": time.perf_counter() - start,
              "environment": environment()}
    os.makedirs(output_dir, exist_ok=True)
    config_lib.write_json(os.path.join(output_dir, f"{name}.json"), repo_relative(result))
    plot_curves(shown, os.path.join(output_dir, f"{name}.png"), title, summary["target_loss"])
    return result


MEASURED_KEYS = ("global_step", "eval_loss", "train_seconds", "step_time_median_s",
                 "step_time_p95_s", "teacher_reloads", "teacher_age_mean_steps",
                 "teacher_age_max_steps", "teacher_age_min_steps", "teacher_age_counted_steps",
                 "reload_interval", "reload_offset", "peer_bytes_read",
                 "teacher_top1_agreement", "teacher_prob_abs_diff",
                 "teacher_total_variation")


def group_measurements(group_dir: str) -> dict:
    """What a group measured about itself (metrics.json): step time, reloads, teacher age
    and agreement, for the results JSON; keys a group did not write are left out."""
    path = layout.GroupLayout(group_dir).metrics
    if not os.path.exists(path):
        return {"group_dir": group_dir}
    with open(path) as f:
        metrics = json.load(f)
    return {"group_dir": group_dir, **{k: metrics[k] for k in MEASURED_KEYS if k in metrics}}


def steps_to_target(curves: dict[str, list[dict]], reference: str) -> dict:
    """Steps each curve needs to reach the reference's best loss, and the ratio to it."""
    target = evaluation.best_loss(curves[reference])
    reference_steps = evaluation.steps_to_reach(curves[reference], target)
    rows = {}
    for label, curve in curves.items():
        steps = evaluation.steps_to_reach(curve, target)
        rows[label] = {"steps": steps, "best_loss": evaluation.best_loss(curve),
                       "final_loss": curve[-1]["loss"],
                       "ratio_to_reference": None if steps is None else steps / reference_steps}
    return {"target_loss": target, "reference": reference, "arms": rows}


def plot_curves(curves: dict[str, list[dict]], path: str, title: str,
                target: float | None = None,
                ylabel: str = "validation cross entropy (nats per token)",
                target_label: str = "target (baseline best)") -> None:
    """One figure: loss vs step for every curve, with the target as a dashed line."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    for label, curve in curves.items():
        axes.plot([p["step"] for p in curve], [p["loss"] for p in curve], marker=".",
                  label=label)
    if target is not None:
        axes.axhline(target, color="gray", linestyle="--", linewidth=1,
                     label=f"{target_label} {target:.3f}")
    axes.set_xlabel("optimizer step (per group)")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)


def environment() -> dict:
    """What the numbers were measured on."""
    import tensorflow as tf
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__)),
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "machine": platform.machine(), "cpus": os.cpu_count(), "git_commit": commit,
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}


def format_table(summary: dict) -> str:
    """The steps-to-target table printed by the experiments."""
    lines = [f"target: {summary['reference']}'s best validation loss "
             f"{summary['target_loss']:.4f}",
             f"{'arm':<34} {'steps to target':>15} {'ratio':>6} {'best loss':>10} "
             f"{'final loss':>10}"]
    for label, row in summary["arms"].items():
        steps = "never" if row["steps"] is None else str(row["steps"])
        ratio = "-" if row["ratio_to_reference"] is None else f"{row['ratio_to_reference']:.2f}"
        lines.append(f"{label:<34} {steps:>15} {ratio:>6} {row['best_loss']:>10.4f} "
                     f"{row['final_loss']:>10.4f}")
    return "\n".join(lines)
