"""Reload stall: 95th-percentile step time over the median, with and without peer reloads.

    python benchmarks/reload_stall.py [--train_steps=200 --reload_interval=10]
    python benchmarks/reload_stall.py --arm_flagfile=configs/experiment_hmm.flags \
        --extra_flag=--num_layers=2 --extra_flag=--units=1024 --extra_flag=--embedding_dim=256 \
        --extra_flag=--vocab_size=24006 --extra_flag=--batch_size=4 --train_steps=100

Runs a configuration (default: the demo, a CPU-sized LM on Python's documentation)
as two codistilling groups that publish and reload every --reload_interval steps,
and at the same time a baseline group that never reloads, then prints each one's
p95/median step time from its metrics.json and the size of a published snapshot.
Steps include the callbacks that swap in reloaded weights and hand weights to the
background publisher. The second command is the paper's LM size on the generated
language (2 x LSTM 1024, 24,006 tokens: float32 snapshots of about 177 MB).
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
flags.DEFINE_string("arm_flagfile", "configs/demo_lm.flags", "Train flags of the run, relative "
                    "to the repository.")
flags.DEFINE_multi_string("extra_flag", [], "Train flags added after the flagfile's.")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(model_dir):
    command = [sys.executable, "-m", "tf_codistill.train",
               f"--flagfile={os.path.join(REPO, FLAGS.arm_flagfile)}", *FLAGS.extra_flag,
               f"--model_dir={model_dir}", f"--train_steps={FLAGS.train_steps}",
               f"--reload_interval={FLAGS.reload_interval}", "--steps_per_loop=50",
               "--burn_in_steps=0", f"--teacher_precision={FLAGS.teacher_precision}",
               "--num_groups=2", "--baseline"]
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)


def main(argv):
    del argv
    model_dir = FLAGS.model_dir or tempfile.mkdtemp(prefix="reload_stall_")
    run(model_dir)
    rows = [("group 0", os.path.join(model_dir, "group_0")),
            ("group 1", os.path.join(model_dir, "group_1")),
            ("baseline (no reloads)", os.path.join(model_dir, "baseline", "group_0"))]
    print(f"{FLAGS.arm_flagfile} {' '.join(FLAGS.extra_flag)}: {FLAGS.train_steps} steps, "
          f"reload and publish every {FLAGS.reload_interval} steps, {FLAGS.teacher_precision} "
          f"teachers, published snapshot {_snapshot_mb(model_dir):.1f} MB")
    for name, directory in rows:
        with open(os.path.join(directory, "metrics.json")) as f:
            m = json.load(f)
        ratio = m["step_time_p95_s"] / m["step_time_median_s"]
        print(f"{name:<22} median {m['step_time_median_s'] * 1e3:7.1f} ms  p95 "
              f"{m['step_time_p95_s'] * 1e3:7.1f} ms  p95/median {ratio:4.2f}  reloads "
              f"{m['teacher_reloads']}  reload latency {m['reload_latency_s'] or 0:.3f} s")


def _snapshot_mb(model_dir):
    """The size of group 0's newest published snapshot (its ckpt-<step>.* files)."""
    published = os.path.join(model_dir, "group_0", "published")
    sizes = {}
    for name in os.listdir(published):
        if name.startswith("ckpt-"):
            step = int(name[len("ckpt-"):].split(".")[0])
            sizes[step] = sizes.get(step, 0) + os.path.getsize(os.path.join(published, name))
    return sizes[max(sizes)] / 1e6 if sizes else 0.0


if __name__ == "__main__":
    app.run(main)
