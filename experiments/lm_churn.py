r"""Prediction churn between retrains on the language model (the paper's Table 1 measure).

    python experiments/lm_churn.py --root=runs/ttt_hmm_rows25 --seeds=0,1,2
    # -> experiments/results/lm_churn.json, and the table printed

Takes the final checkpoint of every finished seed of the time-to-target arms under --root
(sync 1x, sync 2x, each codistilled group), or with --step=S the checkpoints they kept at
step S, and measures, for every pair of seeds of one arm,
mean |p - q| over tokens and the vocabulary and the share of tokens whose top-1 prediction
differs, on the same held-out streams (those of the 1x arm's first seed).
"""

import json
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from experiments.harness import lm_churn  # noqa: E402
from experiments.harness.results_paths import repo_relative  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
flags.DEFINE_string("root", "runs/ttt_hmm_rows25", "Where time_to_target.py trained the arms.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds to compare (unfinished ones are left out).")
flags.DEFINE_integer("step", 0, "Compare the checkpoints kept at this step instead of the "
                     "final ones (0: final).")
flags.DEFINE_string("output", os.path.join(REPO, "experiments", "results", "lm_churn.json"), "")


def main(argv):
    del argv
    step = FLAGS.step or None
    models = lm_churn.arm_models(FLAGS.root, [int(s) for s in FLAGS.seeds], step=step)
    reference = next((dirs[min(dirs)] for dirs in models.values() if dirs), None)
    if reference is None:
        raise app.UsageError(f"no finished arm under --root={FLAGS.root}")
    result = lm_churn.churn_across_seeds(models, reference, step)
    print(lm_churn.format_table(result))
    with open(FLAGS.output, "w") as f:
        json.dump(repo_relative({"command": "python " + shlex.join(sys.argv),
                                 "root": FLAGS.root, "step": step or "final", "models": models,
                                 "held_out_of": reference, "churn": result}), f, indent=1)


if __name__ == "__main__":
    app.run(main)
