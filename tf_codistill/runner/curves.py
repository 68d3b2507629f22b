"""Held-out curves of a finished local run, as a picture beside its metrics.

Every group and the baseline are scored at each checkpoint they kept (train with
``--keep_checkpoints=0`` for one per ``--steps_per_loop``) on one common held-out
stream, group 0's, so the curves compare like with like. ``write`` saves
``<model_dir>/curves.json`` and ``<model_dir>/curves.png``.
"""

from __future__ import annotations

import io
import os

from tf_codistill import config as config_lib
from tf_codistill.config import files
from tf_codistill.runner import summary

JSON_NAME = "curves.json"
PNG_NAME = "curves.png"


def held_out_curves(run: summary.RunResult) -> dict[str, list[dict]]:
    """{label: [{step, loss}]} for every group and the baseline, on group 0's held-out data."""
    import tensorflow as tf

    from tf_codistill.runner import evaluation
    evaluator = evaluation.Evaluator(run.groups[0].config, tf.distribute.get_strategy())
    return {label(group): evaluator.curve([group.layout.directory])
            for group in run.every_group}


def label(group: summary.GroupResult) -> str:
    return "baseline (no distillation)" if group.name == summary.BASELINE \
        else f"group {group.name} (codistilled)"


def write(run: summary.RunResult) -> str:
    """Scores, saves the JSON and the PNG under the run's model_dir; returns the PNG's path."""
    curves = held_out_curves(run)
    config_lib.write_json(os.path.join(run.model_dir, JSON_NAME), curves)
    path = os.path.join(run.model_dir, PNG_NAME)
    config = run.groups[0].config
    plot(curves, path, f"{config.task}: held-out loss, {len(run.groups)} codistilled groups "
         f"and the baseline (seed {config.trainer.seed})")
    return path


def plot(curves: dict[str, list[dict]], path: str, title: str) -> None:
    """Loss against step, one line per curve; dashed for the baseline. Rendered in memory
    and written whole (``atomic_write``): no half PNG after a kill, and gs:// works."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4))
    for name, curve in curves.items():
        axes.plot([p["step"] for p in curve], [p["loss"] for p in curve], marker=".",
                  label=name, linestyle="--" if name.startswith("baseline") else "-")
    axes.set_xlabel("optimizer step (per group)")
    axes.set_ylabel("held-out loss (nats)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    png = io.BytesIO()
    try:
        figure.savefig(png, format="png", dpi=100)
    finally:
        pyplot.close(figure)
    files.atomic_write(path, png.getvalue())
