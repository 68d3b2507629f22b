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

from experiments.harness import lm_experiments  # noqa: E402

FLAGS = flags.FLAGS
lm_experiments.define_flags(flags, sys.argv[0])
flags.DEFINE_list("reload_intervals", ["1", "50", "250"], "Steps between peer reloads.")


def main(argv):
    del argv
    result = lm_experiments.staleness(FLAGS.root, FLAGS.output_dir, FLAGS.train_steps,
                                     FLAGS.burn_in_steps,
                                     [int(n) for n in FLAGS.reload_intervals])
    print(f"total {result['total_seconds'] / 60:.1f} min; results in {FLAGS.output_dir}")


if __name__ == "__main__":
    app.run(main)
