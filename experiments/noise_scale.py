r"""The regime: the gradient noise scale along the 1x arm, next to the batch scan.

    python experiments/noise_scale.py --group_dir=runs/ttt_hmm_rows25/baseline/group_0 \
        --steps=400,1000,2000,2800
    # -> experiments/results/noise_scale_hmm.json, and the table printed

Resumes copies of the 1x arm's checkpoints for --measure_steps steps each, measuring B_simple
every step (the train step's telemetry), and sets each figure beside the held-out loss at
that step and the steps ratio 2x/1x the time-to-target curves (--curves) measured to it.
"""

import json
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from experiments.harness import lm_experiments, noise_scale_scan  # noqa: E402
from experiments.harness.results_paths import repo_relative  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
flags.DEFINE_string("group_dir", "runs/ttt_hmm_rows25/baseline/group_0",
                    "A trained 1x group that kept its checkpoints (--keep_checkpoints=0).")
flags.DEFINE_list("steps", ["400", "1000", "2000", "2800"], "Checkpoint steps to measure at.")
flags.DEFINE_integer("measure_steps", 200, "Steps each resumed copy trains, measuring.")
flags.DEFINE_string("curves", os.path.join(
    REPO, "experiments", "results", "time_to_target_hmm_rows25_capped.json"),
    "The time-to-target result whose 1x and 2x curves the figures stand beside.")
flags.DEFINE_string("root", "runs/noise_scale_hmm", "Where the resumed copies train.")
flags.DEFINE_string("output", os.path.join(REPO, "experiments", "results",
                                           "noise_scale_hmm.json"), "")


def main(argv):
    del argv
    with open(FLAGS.curves) as f:
        curves = json.load(f)
    train_flags = curves["train_flags"]
    measured = noise_scale_scan.measure(
        FLAGS.group_dir, [int(s) for s in FLAGS.steps],
        [f for f in train_flags if not f.startswith(("--train_steps", "--burn_in_steps"))],
        FLAGS.root, FLAGS.measure_steps)
    rows = noise_scale_scan.next_to_scan(
        measured, curves["arm_curves"], curves["batch_size"],
        int(lm_experiments.flag_value(train_flags, "seq_len", "32")))
    print(noise_scale_scan.format_table(rows))
    with open(FLAGS.output, "w") as f:
        json.dump(repo_relative({
            "command": "python " + shlex.join(sys.argv), "group_dir": FLAGS.group_dir,
            "measure_steps": FLAGS.measure_steps, "curves": FLAGS.curves,
            "train_flags": train_flags, "measured": measured, "rows": rows}), f, indent=1)


if __name__ == "__main__":
    app.run(main)
