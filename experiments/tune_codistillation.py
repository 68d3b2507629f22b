r"""Codistillation's weight, reload interval and burn-in, chosen on validation streams.

Trains each candidate (weight:interval:burn_in) as 2-way codistillation at one seed beside
the 1x synchronous arm, scores all on the generated language's validation streams (apart
from the test streams every reported figure uses) and ranks them by steps to the 1x arm's
lowest loss there. A candidate at the flagfile's weight and --burn_in_steps is the very arm
time_to_target.py trains (reused when finished); see experiments/harness/codistill_tuning.py.

    python experiments/tune_codistillation.py --root=runs/ttt_hmm_low_entropy_b128 \
        --train_steps=1500 --burn_in_steps=150 \
        --candidates=0.5:50:150,0.25:50:150,1:50:150,0.5:25:150,0.5:50:400 \
        --extra_flag=--source_successors=2 --extra_flag=--source_emissions=2 \
        --extra_flag=--batch_size=128 --extra_flag=--learning_rate=0.006
    # -> experiments/results/codistill_tuning.{json,png}
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from experiments.harness import codistill_tuning, lm_experiments  # noqa: E402

FLAGS = flags.FLAGS
lm_experiments.define_flags(flags, sys.argv[0], root="runs/codistill_tuning")
flags.DEFINE_list("candidates", ["0.5:50:150", "0.25:50:150", "1:50:150", "0.5:25:150",
                                 "0.5:50:400"],
                  "Settings to try, each distill_weight:reload_interval:burn_in_steps.")
flags.DEFINE_integer("seed", 0, "Seed of every arm.")
flags.DEFINE_string("arm_flagfile", codistill_tuning.HMM_FLAGFILE,
                    "Train flags of every arm (a --task=hmm_lm flagfile).")
flags.DEFINE_multi_string("extra_flag", [], "Train flags every arm adds.")
flags.DEFINE_string("name", "codistill_tuning", "Name of the JSON and PNG written.")


def main(argv):
    del argv
    try:
        candidates = [codistill_tuning.Candidate.parse(c) for c in FLAGS.candidates]
    except ValueError as error:
        raise app.UsageError(f"--candidates: {error}") from None
    result = codistill_tuning.tune(
        FLAGS.root, FLAGS.output_dir, FLAGS.train_steps, FLAGS.burn_in_steps, candidates,
        seed=FLAGS.seed, extra_flags=FLAGS.extra_flag, flagfile=FLAGS.arm_flagfile,
        name=FLAGS.name)
    print(f"total {result['total_seconds'] / 60:.1f} min; results in {FLAGS.output_dir}")


if __name__ == "__main__":
    app.run(main)
