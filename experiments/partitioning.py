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

from tf_codistill import lm_experiments  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("root", "runs/experiments", "Where the arms train (shared by experiments).")
flags.DEFINE_string("output_dir", os.path.join(os.path.dirname(__file__), "results"),
                    "Where the JSON result and the plot go.")
flags.DEFINE_integer("train_steps", 1000, "Optimizer steps of every arm (per group).")
flags.DEFINE_integer("burn_in_steps", 200, "Steps before the distillation term switches on.")


def main(argv):
    del argv
    result = lm_experiments.partitioning(FLAGS.root, FLAGS.output_dir, FLAGS.train_steps,
                                        FLAGS.burn_in_steps)
    print(f"total {result['total_seconds'] / 60:.1f} min; results in {FLAGS.output_dir}")


if __name__ == "__main__":
    app.run(main)
