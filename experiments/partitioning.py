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

from experiments.harness import lm_experiments  # noqa: E402

FLAGS = flags.FLAGS
lm_experiments.define_flags(flags, sys.argv[0])


def main(argv):
    del argv
    result = lm_experiments.partitioning(FLAGS.root, FLAGS.output_dir, FLAGS.train_steps,
                                        FLAGS.burn_in_steps)
    print(f"total {result['total_seconds'] / 60:.1f} min; results in {FLAGS.output_dir}")


if __name__ == "__main__":
    app.run(main)
