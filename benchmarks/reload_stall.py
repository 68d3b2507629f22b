"""Reload stall: 95th-percentile step time over the median, with and without peer reloads.

    python benchmarks/reload_stall.py [--train_steps=200 --reload_interval=10]

Runs the demo configuration (CPU-sized LM on Python's documentation) as two
codistilling groups that publish and reload every --reload_interval steps, and
at the same time a baseline group that never reloads, then prints each one's
p95/median step time from its metrics.json. Steps include the callbacks that
swap in reloaded weights and hand weights to the background publisher.
"""

import json
import os
import subprocess
import sys
import tempfile

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("train_steps", 200, "Steps per group.")
flags.DEFINE_integer("reload_interval", 10, "Steps between publishes and reloads.")
flags.DEFINE_string("teacher_precision", "float32", "Published teacher precision.")
flags.DEFINE_string("model_dir", "", "Where to run (default: a temporary directory).")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(model_dir):
    command = [sys.executable, "-m", "tf_codistill.train",
               f"--flagfile={os.path.join(REPO, 'configs', 'demo.flags')}",
               f"--model_dir={model_dir}", f"--train_steps={FLAGS.train_steps}",
               f"--reload_interval={FLAGS.reload_interval}", "--steps_per_loop=50",
               "--burn_in_steps=0", f"--teacher_precision={FLAGS.teacher_precision}"]
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)


def main(argv):
    del argv
    model_dir = FLAGS.model_dir or tempfile.mkdtemp(prefix="reload_stall_")
    run(model_dir)
    rows = [("group 0", os.path.join(model_dir, "group_0")),
            ("group 1", os.path.join(model_dir, "group_1")),
            ("baseline (no reloads)", os.path.join(model_dir, "baseline", "group_0"))]
    print(f"{FLAGS.train_steps} steps, reload and publish every {FLAGS.reload_interval} steps, "
          f"{FLAGS.teacher_precision} teachers")
    for name, directory in rows:
        with open(os.path.join(directory, "metrics.json")) as f:
            m = json.load(f)
        ratio = m["step_time_p95_s"] / m["step_time_median_s"]
        print(f"{name:<22} median {m['step_time_median_s'] * 1e3:7.1f} ms  p95 "
              f"{m['step_time_p95_s'] * 1e3:7.1f} ms  p95/median {ratio:4.2f}  reloads "
              f"{m['teacher_reloads']}  reload latency {m['reload_latency_s'] or 0:.3f} s")


if __name__ == "__main__":
    app.run(main)
