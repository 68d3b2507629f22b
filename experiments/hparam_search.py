"""Hyperparameter search over distillation weight, burn-in and learning rate.

Random search (keras-tuner) of two in-process codistilling MLPs on the
noisy-label clusters task, a separate learning-rate search for plain training
(w = 0), and both winners retrained on fresh seeds; see tf_codistill/tuning.py
for why it is done this way. A few minutes on 2 CPU cores.

    python experiments/hparam_search.py   # writes experiments/results/hparam_search.{json,png}
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from absl import app, flags  # noqa: E402

from experiments.harness import tuning  # noqa: E402
from tf_codistill.tasks.clusters import ClustersData  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def run(output: str, tuner_dir: str, max_trials: int, baseline_trials: int, confirm_seeds: int,
        seed: int, config: tuning.TinyConfig | None = None,
        space: tuning.SearchSpace | None = None, verbose: int = 0) -> dict:
    """Runs the comparison; writes ``output`` (JSON) and the figure next to it (.png)."""
    config = config or tuning.TinyConfig(data=ClustersData(seed=seed))
    space = space or tuning.SearchSpace()
    started = time.time()
    results = tuning.compare(config, space, tuner_dir, max_trials, baseline_trials,
                             confirm_seeds, seed, verbose)
    results.update(seconds=time.time() - started, seed=seed, config=dataclasses.asdict(config),
                   space=dataclasses.asdict(space), versions=_versions(),
                   budget={"max_trials": max_trials, "baseline_trials": baseline_trials,
                           "confirm_seeds": confirm_seeds})
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", encoding="utf-8") as out:
        json.dump(results, out, indent=1)
    tuning.plot_search(results["trials"], results["baseline_trials"],
                       os.path.splitext(output)[0] + ".png", results["confirmation"])
    return results


def format_table(results: dict) -> str:
    header = (f"{'search':<9}{'trial':>6}{'w':>6}{'burn-in':>9}{'lr':>10}"
              f"{'eval loss':>11}{'eval acc':>10}{'s':>6}")
    lines = [header]
    rows = [("joint", r) for r in results["trials"]] + [("plain", r)
                                                        for r in results["baseline_trials"]]
    for search, r in sorted(rows, key=lambda row: row[1]["eval_loss"]):
        hp = r["hyperparameters"]
        lines.append(f"{search:<9}{r['trial']:>6}{hp['distill_weight']:>6.2f}"
                     f"{hp['burn_in_steps']:>9}{hp['learning_rate']:>10.2e}"
                     f"{r['eval_loss']:>11.4f}{r['eval_accuracy']:>10.4f}{r['seconds']:>6.1f}")
    lines.append("")
    for arm, figures in results["confirmation"].items():
        hp = figures["hyperparameters"]
        lines.append(f"best {arm:<12} (w {hp['distill_weight']:.2f}, burn-in "
                     f"{hp['burn_in_steps']}, lr {hp['learning_rate']:.2e}) retrained on seeds "
                     f"{figures['seeds']}: eval loss {figures['mean_eval_loss']:.4f} +- "
                     f"{figures['std_eval_loss']:.4f} (std), accuracy "
                     f"{figures['mean_eval_accuracy']:.4f}")
    return "\n".join(lines)


def _versions() -> dict:
    import keras_tuner
    import matplotlib
    import numpy
    import tensorflow
    import tf_keras
    return {"python": platform.python_version(), "tensorflow": tensorflow.__version__,
            "tf_keras": tf_keras.__version__, "keras_tuner": keras_tuner.__version__,
            "numpy": numpy.__version__, "matplotlib": matplotlib.__version__}


FLAGS = flags.FLAGS


def define_flags():
    """Flags of the script alone: importing the module defines none."""
    flags.DEFINE_integer("max_trials", 30, "Trials of the joint search (w, burn-in, lr).")
    flags.DEFINE_integer("baseline_trials", 10, "Trials of the plain-training (w = 0) lr search.")
    flags.DEFINE_integer("confirm_seeds", 5, "Fresh seeds on which both winners are retrained.")
    flags.DEFINE_integer("seed", 0, "Seed of the data, the trials' training and the sampler.")
    flags.DEFINE_string("output", os.path.join(RESULTS, "hparam_search.json"),
                        "JSON results file; the figure is written next to it as .png.")
    flags.DEFINE_string("tuner_dir", os.path.join(tempfile.gettempdir(), "tf_codistill_tuner"),
                        "keras-tuner's trial store; the same settings again resume from it.")


def main(argv):
    del argv
    results = run(FLAGS.output, FLAGS.tuner_dir, FLAGS.max_trials, FLAGS.baseline_trials,
                  FLAGS.confirm_seeds, FLAGS.seed, verbose=1)
    print(format_table(results))
    print(f"wall time: {results['seconds'] / 60:.1f} min; wrote {FLAGS.output} and .png")


if __name__ == "__main__":
    define_flags()
    app.run(main)
