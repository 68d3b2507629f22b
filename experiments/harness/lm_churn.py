"""Prediction churn between retrains of the time-to-target arms (the paper's Table 1 measure on
the language model): each arm's final models, one per seed, compared pairwise on the same
held-out streams."""

from __future__ import annotations

import os
from typing import Sequence

from experiments.harness import lm_experiments
from tf_codistill.core import churn
from tf_codistill.runner import evaluation
from tf_codistill.config import layout

MEASURES = ("mean_abs_diff", "top1_disagreement")


def arm_models(root: str, seeds: Sequence[int], lr_scaling: str = "sqrt",
               step: int | None = None) -> dict:
    """{arm label: {seed: group dir}} under ``root`` of the finished arms, or with ``step``
    of those that kept a checkpoint at that step (a codistillation run counts as two
    models: group 0 and group 1, listed apart)."""
    arms = {"sync SGD, batch 1x": lambda s: lm_experiments.sync_arm(1, s, 0, 0.0),
            "sync SGD, batch 2x": lambda s: lm_experiments.sync_arm(2, s, 0, 0.0, lr_scaling)}
    models = {label: {s: arm(s).group_dirs(root)[0] for s in seeds}
              for label, arm in arms.items()}
    for group in (0, 1):
        models[f"2-way codistillation, group {group}"] = {
            s: lm_experiments.codistill_arm(s).group_dirs(root)[group] for s in seeds}
    def ready(group_dir):
        if step is None:
            return os.path.exists(layout.GroupLayout(group_dir).metrics)
        return (os.path.isdir(group_dir)
                and step in evaluation.checkpoint_steps(group_dir))

    return {label: {s: d for s, d in dirs.items() if ready(d)} for label, dirs in models.items()}


def churn_across_seeds(models: dict, reference_dir: str, step: int | None = None) -> dict:
    """Every arm's pairwise churn across seeds (their final checkpoints, or those at
    ``step``), scored on ``reference_dir``'s held-out streams: per pair and mean +- half
    range over the pairs."""
    import tensorflow as tf

    evaluator = evaluation.Evaluator(evaluation.load_run_config(reference_dir),
                                     tf.distribute.get_strategy())
    result = {}
    for label, dirs in models.items():
        seeds = sorted(dirs)
        if len(seeds) < 2:
            result[label] = {"seeds": seeds, "pairs": {}}
            continue
        pairs = evaluator.churn([evaluation.latest_checkpoint(dirs[s]) if step is None
                                 else evaluation.checkpoint_steps(dirs[s])[step]
                                 for s in seeds])
        named = {f"{seeds[i]}-{seeds[j]}": values for (i, j), values in pairs.items()}
        result[label] = {"seeds": seeds, "pairs": named, **{
            measure: churn.mean_and_half_range([v[measure] for v in named.values()])
            for measure in MEASURES}}
    return result


def format_table(result: dict) -> str:
    lines = ["churn between retrains (seeds) on the held-out streams: mean ± half range over "
             "pairs", f"{'arm':<36} {'seeds':>7} {'mean |p - q|':>18} {'top-1 disagreement':>20}"]
    for label, row in result.items():
        if not row["pairs"]:
            lines.append(f"{label:<36} {','.join(map(str, row['seeds'])):>7} "
                         f"{'(needs 2 seeds)':>18}")
            continue
        diff, top1 = row["mean_abs_diff"], row["top1_disagreement"]
        lines.append(f"{label:<36} {','.join(map(str, row['seeds'])):>7} "
                     f"{diff[0]:>10.5f} ± {diff[1]:.5f} {top1[0]:>12.4f} ± {top1[1]:.4f}")
    return "\n".join(lines)
