"""Choosing codistillation's distillation weight, reload interval and burn-in on validation
streams, so that the reported figures (scored on the test streams) are not tuned to them.

Each candidate trains at one seed beside the 1x synchronous arm. All are scored on the
generated language's validation streams (``--held_out=validation``: read by no training
and by no reported figure), and the candidate needing the fewest steps to the lowest
validation loss the 1x arm reaches wins: the reported metric, measured apart. The mean
loss of the last checkpoints ranks candidates that never reach it, and breaks ties.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Sequence

from tf_codistill import config as config_lib
from tf_codistill.runner import evaluation
from . import experiment_lib, lm_experiments
from .experiment_lib import Arm
from .results_paths import repo_relative

HMM_FLAGFILE = os.path.join(lm_experiments.REPO, "configs", "experiment_hmm.flags")
LAST_CHECKPOINTS = 3  # the final-window loss: mean over this many last checkpoints
BASELINE = "sync SGD, batch 1x"


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One setting of codistillation's three knobs."""

    distill_weight: float
    reload_interval: int
    burn_in_steps: int

    @classmethod
    def parse(cls, text: str) -> "Candidate":
        """``weight:interval:burn_in``, e.g. ``0.5:50:150``."""
        try:
            weight, interval, burn_in = text.split(":")
            return cls(float(weight), int(interval), int(burn_in))
        except ValueError:
            raise ValueError(f"candidate {text!r} is not weight:interval:burn_in; pass e.g. "
                             "0.5:50:150") from None

    @property
    def label(self) -> str:
        return (f"w {self.distill_weight:g}, reload every {self.reload_interval}, "
                f"burn-in {self.burn_in_steps}")

    def arm(self, seed: int, common_weight: float, common_burn_in: int) -> Arm:
        """The codistillation arm of this setting. At the weight and burn-in every arm is
        given (``common_*``), the very arm ``lm_experiments.codistill_arm`` trains, so a
        finished run is reused; the name says what else differs."""
        extra, suffix = [], ""
        if self.distill_weight != common_weight:
            extra.append(f"--distill_weight={self.distill_weight:g}")
            suffix += f"_w{self.distill_weight:g}"
        if self.burn_in_steps != common_burn_in:
            extra.append(f"--burn_in_steps={self.burn_in_steps}")
            suffix += f"_burnin{self.burn_in_steps}"
        base = lm_experiments.codistill(self.reload_interval)
        return lm_experiments.with_seed(
            Arm(base.name + suffix, base.flags + tuple(extra), base.num_groups), seed)


def choose(baseline_curve: Sequence[dict], candidate_curves: dict[str, Sequence[dict]]
           ) -> dict:
    """Ranks candidates by steps to the baseline's lowest loss, then by final-window loss."""
    target = evaluation.best_loss(baseline_curve)
    rows = {}
    for label, curve in candidate_curves.items():
        last = [point["loss"] for point in curve[-LAST_CHECKPOINTS:]]
        rows[label] = {"steps_to_target": lm_experiments.reach(curve, target)[1],
                       "final_window_loss": sum(last) / len(last),
                       "best_loss": evaluation.best_loss(curve)}
    ranking = sorted(rows, key=lambda label: (rows[label]["steps_to_target"] is None,
                                              rows[label]["steps_to_target"] or 0.0,
                                              rows[label]["final_window_loss"]))
    return {"target_loss": target, "candidates": rows, "ranking": ranking,
            "chosen": ranking[0]}


def tune(root: str, output_dir: str, train_steps: int, burn_in_steps: int,
         candidates: Sequence[Candidate], seed: int = 0, extra_flags: Sequence[str] = (),
         flagfile: str = HMM_FLAGFILE, name: str = "codistill_tuning") -> dict:
    """Trains what is missing, scores on the validation streams, writes
    ``<output_dir>/<name>.{json,png}`` and returns the result."""
    start = time.perf_counter()
    if lm_experiments.flag_value([f"--flagfile={flagfile}", *extra_flags], "task") != "hmm_lm":
        raise ValueError(f"{flagfile} does not train --task=hmm_lm: only the generated "
                         "language has validation streams apart from its test streams.")
    flags = lm_experiments.common_flags(root, train_steps, burn_in_steps, extra_flags,
                                        flagfile=flagfile)
    common_weight = float(lm_experiments.flag_value(flags, "distill_weight", "1.0"))
    baseline = lm_experiments.sync_arm(
        1, seed, int(lm_experiments.flag_value(flags, "batch_size", "32")),
        float(lm_experiments.flag_value(flags, "learning_rate", "0.001")))
    arms = {c.label: c.arm(seed, common_weight, burn_in_steps) for c in candidates}
    timings = experiment_lib.train_waves([[baseline], *([a] for a in arms.values())], flags,
                                         root)
    every = [baseline, *arms.values()]
    group_curves = experiment_lib.score_curves(
        {d: [d] for arm in every for d in arm.group_dirs(root)},
        baseline.group_dirs(root)[0], data_overrides={"held_out": "validation"})
    curves = {label: experiment_lib.mean_curve([group_curves[d] for d in arm.group_dirs(root)])
              for label, arm in {BASELINE: baseline, **arms}.items()}
    summary = choose(curves[BASELINE], {label: curves[label] for label in arms})
    print(format_table(summary), flush=True)
    result = {"experiment": name, "train_flags": list(flags), "seed": seed,
              "scored_on": "validation streams (--held_out=validation)",
              "common": {"distill_weight": common_weight, "burn_in_steps": burn_in_steps},
              "candidates": {c.label: {**dataclasses.asdict(c),
                                       "model_dir": arms[c.label].model_dir(root)}
                             for c in candidates},
              "baseline_model_dir": baseline.model_dir(root), "curves": curves,
              "summary": summary, "training_waves": timings,
              "total_seconds": time.perf_counter() - start,
              "environment": experiment_lib.environment()}
    os.makedirs(output_dir, exist_ok=True)
    config_lib.write_json(os.path.join(output_dir, f"{name}.json"), repo_relative(result))
    experiment_lib.plot_curves(curves, os.path.join(output_dir, f"{name}.png"),
                               f"Codistillation's settings on validation streams (seed {seed})",
                               summary["target_loss"], target_label="target (1x sync's best)")
    return result


def format_table(summary: dict) -> str:
    lines = [f"validation streams: steps to {summary['target_loss']:.4f} (the 1x arm's lowest "
             "loss there), best first",
             f"{'candidate':<44} {'steps':>7} {'final-window loss':>18} {'best loss':>10}"]
    for label in summary["ranking"]:
        row = summary["candidates"][label]
        steps = row["steps_to_target"]
        lines.append(f"{label:<44} {'never' if steps is None else f'{steps:.0f}':>7} "
                     f"{row['final_window_loss']:>18.4f} {row['best_loss']:>10.4f}")
    lines.append(f"chosen: {summary['chosen']}")
    return "\n".join(lines)
