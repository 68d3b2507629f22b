r"""Time to target against the bandwidth between the machines, 3 seeds.

    python experiments/time_vs_bandwidth.py \
        --curves=experiments/results/time_to_target_hmm_rows25_capped.json \
        --link=benchmarks/results/interconnect.json
    # -> experiments/results/time_vs_bandwidth.{json,png}, and the table printed

Steps to the target per arm and seed come from a time-to-target run's curves; a step's
compute from that run's timings (--compute=curves) or the link benchmark's (--compute=link,
or --compute=as_run: each arm's whole step as run over the link);
what the link adds at each bandwidth from benchmarks/interconnect.py (see experiments/harness/bandwidth.py
for the time model). The PNG is codistillation's time over the best synchronous arm's on the
same machines against bandwidth, the crossover marked.
"""

import json
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from experiments.harness import bandwidth  # noqa: E402
from experiments.harness.results_paths import repo_relative  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
flags.DEFINE_string("curves", os.path.join(
    REPO, "experiments", "results", "time_to_target_hmm_rows25_capped.json"),
    "A time_to_target.py result (every arm's curves for every seed).")
flags.DEFINE_string("link", os.path.join(REPO, "benchmarks", "results", "interconnect.json"),
                    "A benchmarks/interconnect.py result.")
flags.DEFINE_float("target_loss", 0.0, "0: the loss every seed of the 1x arm reaches.")
flags.DEFINE_enum("compute", "curves", bandwidth.COMPUTE_SOURCES, "A step's compute: "
                  "as the time-to-target run timed it (each arm alone), as the link "
                  "benchmark did (beside the link measurements, on however loaded a machine), "
                  "or as_run: every arm's whole step as the link benchmark ran it, the 2x "
                  "arm's real two-worker step included (nothing added).")
flags.DEFINE_string("output_dir", os.path.join(REPO, "experiments", "results"), "")
flags.DEFINE_string("name", "time_vs_bandwidth", "Name of the JSON and PNG written.")


def _reload_interval(curves: dict) -> int:
    intervals = {c["codistill"]["reload_interval"] for d, c in curves["group_configs"].items()
                 if "codistill" in d}
    if len(intervals) != 1:
        raise app.UsageError(f"{FLAGS.curves}: codistilled groups with reload intervals "
                             f"{sorted(intervals)}; expected one.")
    return intervals.pop()


def main(argv):
    del argv
    with open(FLAGS.curves) as f:
        curves = json.load(f)
    with open(FLAGS.link) as f:
        link = json.load(f)
    missing = {bandwidth.SYNC_1X, bandwidth.SYNC_2X, bandwidth.CODISTILL} - set(
        curves["arm_curves"])
    if missing:
        raise app.UsageError(f"{FLAGS.curves} has no curves of {sorted(missing)}.")
    interval = _reload_interval(curves)
    table = bandwidth.time_table(curves, link, interval, FLAGS.target_loss or None,
                                 FLAGS.compute)
    print(bandwidth.format_table(table))
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    path = os.path.join(FLAGS.output_dir, FLAGS.name)
    with open(f"{path}.json", "w") as f:
        json.dump(repo_relative({
            "command": "python " + shlex.join(sys.argv), "curves": FLAGS.curves,
            "link": FLAGS.link, "link_command": link.get("command"), "seeds": curves["seeds"],
            "reload_interval": interval, "time_model": bandwidth.__doc__, **table}), f, indent=1)
    bandwidth.plot(table, f"{path}.png", f"2-way codistillation vs sync SGD on 2 machines "
                   f"({len(curves['seeds'])} seeds; step times: {FLAGS.compute})")


if __name__ == "__main__":
    app.run(main)
