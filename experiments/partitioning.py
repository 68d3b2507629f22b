r"""Partitioning: 2-way codistillation on disjoint vs the same data (paper 3.3.2, figure 2b).

The same CPU-sized LM and arms as experiments/steps_to_target.py (the baseline and the
disjoint arm are shared and train once). Each codistillation arm is shown as the mean
validation loss of its two groups; the JSON keeps each group's curve.

    python experiments/partitioning.py        # -> experiments/results/partitioning.{json,png}
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from tf_codistill import experiment_lib  # noqa: E402
from tf_codistill import lm_experiments as lm  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("root", "runs/experiments", "Where the arms train (shared by experiments).")
flags.DEFINE_string("output_dir", os.path.join(os.path.dirname(__file__), "results"),
                    "Where the JSON result and the plot go.")
flags.DEFINE_integer("train_steps", 1000, "Optimizer steps of every arm (per group).")
flags.DEFINE_integer("burn_in_steps", 200, "Steps before the distillation term switches on.")
flags.DEFINE_list("extra_flags", [], "More train flags for every arm (tiny runs in tests).")


def run(root, output_dir, train_steps, burn_in_steps, extra_flags=(), corpus=None):
    arms = {"disjoint": lm.codistill(partition="disjoint"),
            "same": lm.codistill(partition="same")}
    curves = {"baseline": lm.BASELINE.group_dirs(root)}
    means = {}
    for partition, arm in arms.items():
        label = f"codistillation, {partition} data"
        members = [f"{label}, group {g}" for g in range(arm.num_groups)]
        curves.update(zip(members, ([d] for d in arm.group_dirs(root))))
        means[f"{label} (mean of groups)"] = members
    return experiment_lib.run_experiment(
        "partitioning", root=root, output_dir=output_dir,
        common_flags=lm.common_flags(root, train_steps, burn_in_steps, extra_flags, corpus),
        waves=[[lm.BASELINE], *([arm] for arm in arms.values())], curves=curves,
        group_means=means, title="Data partitioning between groups: CPU-sized LM")


def main(argv):
    del argv
    result = run(FLAGS.root, FLAGS.output_dir, FLAGS.train_steps, FLAGS.burn_in_steps,
                 FLAGS.extra_flags)
    print(f"total {result['total_seconds'] / 60:.1f} min; results in {FLAGS.output_dir}")


if __name__ == "__main__":
    app.run(main)
