r"""Steps to target: validation cross entropy vs step for the paper's arms (figure 2a).

Trains, on the CPU-sized LM of configs/experiment_lm.flags with real text:
  * the synchronous-SGD baseline (one group reading all the data), twice (seeds 0, 1);
  * label smoothing toward the uniform and the unigram distribution (paper 3.3);
  * 2-way codistillation: two groups on disjoint halves of the data, each reloading
    the other's checkpoint every 50 steps;
  * (--two_phase) a fresh model distilled from the ensemble of the two baselines;
and scores every kept checkpoint on the held-out documents, plus the ensemble of the
two baselines (mean probability; evaluation only). Reports the steps each arm needs
to reach the baseline's best validation loss and the ratio to the baseline's steps
(the paper: about 0.5 for codistillation).

    python experiments/steps_to_target.py     # ~40 min on 2 CPU cores
    # -> experiments/results/steps_to_target.{json,png}; runs under runs/experiments
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from experiments.harness import lm_experiments  # noqa: E402

FLAGS = flags.FLAGS
lm_experiments.define_flags(flags, sys.argv[0])
flags.DEFINE_bool("two_phase", False, "Also distill the baselines' ensemble into a fresh model "
                  "(one more arm, about 10 more minutes).")


def main(argv):
    del argv
    result = lm_experiments.steps_to_target(FLAGS.root, FLAGS.output_dir, FLAGS.train_steps,
                                           FLAGS.burn_in_steps, FLAGS.two_phase)
    print(f"total {result['total_seconds'] / 60:.1f} min; results in {FLAGS.output_dir}")


if __name__ == "__main__":
    app.run(main)
