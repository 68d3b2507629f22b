r"""Staleness: 2-way codistillation reloading the peer every 1, 50 or 250 steps (figure 4).

The same CPU-sized LM and arms as experiments/steps_to_target.py (the baseline and the
50-step arm are shared and train once). Each codistillation arm is shown as the mean
validation loss of its two groups; the JSON keeps each group's curve.

    python experiments/staleness.py           # -> experiments/results/staleness.{json,png}
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
flags.DEFINE_list("reload_intervals", ["1", "50", "250"], "Steps between peer reloads.")
flags.DEFINE_list("extra_flags", [], "More train flags for every arm (tiny runs in tests).")


def run(root, output_dir, train_steps, burn_in_steps, reload_intervals, extra_flags=(),
        corpus=None):
    arms = {interval: lm.codistill(interval) for interval in reload_intervals}
    curves = {"baseline": lm.BASELINE.group_dirs(root)}
    means = {}
    for interval, arm in arms.items():
        label = f"codistillation, reload every {interval} steps"
        members = [f"{label}, group {g}" for g in range(arm.num_groups)]
        curves.update(zip(members, ([d] for d in arm.group_dirs(root))))
        means[f"{label} (mean of groups)"] = members
    return experiment_lib.run_experiment(
        "staleness", root=root, output_dir=output_dir,
        common_flags=lm.common_flags(root, train_steps, burn_in_steps, extra_flags, corpus),
        waves=[[lm.BASELINE], *([arm] for arm in arms.values())], curves=curves,
        group_means=means, title="Staleness of the teacher: CPU-sized LM")


def main(argv):
    del argv
    result = run(FLAGS.root, FLAGS.output_dir, FLAGS.train_steps, FLAGS.burn_in_steps,
                 [int(i) for i in FLAGS.reload_intervals], FLAGS.extra_flags)
    print(f"total {result['total_seconds'] / 60:.1f} min; results in {FLAGS.output_dir}")


if __name__ == "__main__":
    app.run(main)
