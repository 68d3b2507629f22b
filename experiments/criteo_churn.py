"""Prediction churn on Criteo-format data (Table 1 of Anil et al. 2018).

For each of R repeats, trains two retrains (different seeds: initialization
and data order) of
  * a single DNN,
  * an ensemble of two DNNs (mean predicted probability),
  * a two-way codistilled DNN (CodistillModel + InProcessPeers; the student serves),
and reports, as mean +- half range over repeats, the validation log loss and the
mean absolute difference of predicted probabilities between the two retrains.
The ensembles are made of the four single-DNN trainings of the repeat: the
single-DNN retrains are the first member of each ensemble.

The defaults are sized for a 2-core CPU (under 20 minutes): generated
Criteo-format data (data_pipelines.criteo.write_synthetic_criteo) and a smaller
DNN than the paper's 2560-1024-256; the printed table says so.

    python experiments/criteo_churn.py            # writes experiments/results/criteo_churn.json
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tf_keras as keras  # noqa: E402
from absl import app, flags  # noqa: E402

import tf_codistill as tc  # noqa: E402
from data_pipelines import criteo  # noqa: E402
from experiments.harness.results_paths import repo_relative  # noqa: E402
from tf_codistill.core import churn  # noqa: E402
from tf_codistill.models.criteo_dnn import PAPER_HIDDEN_UNITS, build_criteo_dnn  # noqa: E402

OPTIMIZERS = {"adagrad": keras.optimizers.Adagrad, "adam": keras.optimizers.Adam,
              "sgd": keras.optimizers.SGD}
METHODS = ("single DNN", "ensemble of two DNNs", "two-way codistilled DNN")


@dataclasses.dataclass
class ChurnConfig:
    train_rows: int = 200_000
    eval_rows: int = 50_000
    repeats: int = 5
    hidden_units: tuple[int, ...] = (256, 128, 64)
    hash_buckets: int = 10_000
    embedding_dim: int = 8
    batch_size: int = 512
    epochs: int = 1
    optimizer: str = "adam"
    learning_rate: float = 0.001
    linear_decay: bool = True
    distill_weight: float = 1.0
    burn_in_steps: int = 100
    data_dir: str = ""
    seed: int = 0


def make_data(config: ChurnConfig) -> dict:
    """Writes train/validation files of one labelling rule; returns paths and facts."""
    data_dir = config.data_dir or tempfile.mkdtemp(prefix="criteo_churn_")
    train = os.path.join(data_dir, "train.tsv")
    valid = os.path.join(data_dir, "validation.tsv")
    train_info = criteo.write_synthetic_criteo(train, config.train_rows, seed=1,
                                               structure_seed=config.seed)
    valid_info = criteo.write_synthetic_criteo(valid, config.eval_rows, seed=2,
                                               structure_seed=config.seed)
    return {"train": train, "validation": valid, "train_info": train_info,
            "validation_info": valid_info}


def run(config: ChurnConfig, log=print) -> dict:
    """Trains every repeat and returns per-repeat figures and their summary."""
    data = make_data(config)
    labels = _labels(data["validation"])
    repeats = []
    for repeat in range(config.repeats):
        started = time.time()
        figures = _one_repeat(config, data, labels, base_seed=1000 * (repeat + 1))
        repeats.append(figures)
        log(f"repeat {repeat + 1}/{config.repeats} ({time.time() - started:.0f} s): "
            + json.dumps(figures))
    summary = {}
    for method in METHODS:
        loss = churn.mean_and_half_range([r[method]["log_loss"] for r in repeats])
        diff = churn.mean_and_half_range([r[method]["churn"] for r in repeats])
        summary[method] = {"log_loss": loss, "churn": diff}
    return {"config": dataclasses.asdict(config), "data": data, "repeats": repeats,
            "summary": summary}


def format_table(results: dict) -> str:
    config = results["config"]
    hidden = "-".join(str(u) for u in config["hidden_units"])
    paper = "-".join(str(u) for u in PAPER_HIDDEN_UNITS)
    lines = [
        "Prediction churn on Criteo-format data (Anil et al. 2018, Table 1)",
        f"CPU-sized: generated data ({config['train_rows']} train / "
        f"{config['eval_rows']} validation rows), DNN {hidden} instead of the paper's "
        f"{paper}, {config['optimizer']} lr {config['learning_rate']}"
        f"{' decaying linearly to 0' if config['linear_decay'] else ''}, "
        f"{config['epochs']} epoch(s) of batch {config['batch_size']}, "
        f"burn-in {config['burn_in_steps']} steps",
        f"{config['repeats']} repeats, mean +- half range",
        "",
        f"{'model':<26} {'validation log loss':<22}mean |p1 - p2| (churn)",
    ]
    for method in METHODS:
        (loss, loss_hr), (diff, diff_hr) = (results["summary"][method]["log_loss"],
                                            results["summary"][method]["churn"])
        lines.append(f"{method:<26} {loss:.4f} +- {loss_hr:.4f}      "
                     f"{diff:.4f} +- {diff_hr:.4f}")
    bayes = results["data"]["validation_info"]["bayes_log_loss"]
    lines.append(f"\nlog loss of the true probabilities on the validation rows: {bayes:.4f}")
    return "\n".join(lines)


def _one_repeat(config, data, labels, base_seed):
    singles = [_predict(_train_single(config, data["train"], base_seed + i),
                        data["validation"], config) for i in range(4)]
    codistilled = [_predict(_train_codistilled(config, data["train"], base_seed + 10 + 2 * i),
                            data["validation"], config) for i in range(2)]
    retrains = {
        METHODS[0]: (singles[0], singles[2]),
        METHODS[1]: (churn.ensemble_probabilities(singles[:2]),
                     churn.ensemble_probabilities(singles[2:])),
        METHODS[2]: tuple(codistilled),
    }
    figures = {method: {"log_loss": float(np.mean([_log_loss(labels, p) for p in pair])),
                        "churn": float(churn.prediction_churn(*pair))}
               for method, pair in retrains.items()}
    figures["single DNN log losses"] = [_log_loss(labels, p) for p in singles]
    return figures


def _model(config, seed):
    return build_criteo_dnn(config.hidden_units, hash_buckets=config.hash_buckets,
                            embedding_dim=config.embedding_dim, seed=seed)


def _train_single(config, train_file, seed):
    model = _model(config, seed)
    model.compile(_optimizer(config), keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(_train_data(config, train_file, seed), epochs=config.epochs, verbose=0)
    return model


def _train_codistilled(config, train_file, seed):
    model = tc.CodistillModel(_model(config, seed),
                              tc.InProcessPeers([_model(config, seed + 1)]),
                              output_kind="sigmoid", distill_weight=config.distill_weight,
                              burn_in_steps=config.burn_in_steps)
    model.compile(_optimizer(config))
    model.fit(_train_data(config, train_file, seed), epochs=config.epochs, verbose=0)
    return model.student


def _optimizer(config):
    """The optimizer; with ``linear_decay`` its rate falls to zero at the last step.

    Ending at a zero rate keeps the last updates' noise out of the churn.
    """
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={config.optimizer!r}: choose one of {sorted(OPTIMIZERS)}.")
    rate = config.learning_rate
    if config.linear_decay:
        steps = config.epochs * -(-config.train_rows // config.batch_size)
        rate = keras.optimizers.schedules.PolynomialDecay(rate, steps, end_learning_rate=0.0)
    return OPTIMIZERS[config.optimizer](rate)


def _train_data(config, train_file, seed):
    return criteo.criteo_dataset(train_file, config.batch_size, shuffle=True, seed=seed,
                                 hash_buckets=config.hash_buckets)


def _predict(model, eval_file, config):
    logits = model.predict(criteo.criteo_dataset(eval_file, 4096,
                                                 hash_buckets=config.hash_buckets), verbose=0)
    return churn.to_probabilities(logits, "sigmoid").numpy()


def _labels(eval_file):
    return np.concatenate([y.numpy() for _, y in criteo.criteo_dataset(eval_file, 4096)])


def _log_loss(labels, probs, eps=1e-7):
    probs = np.clip(probs, eps, 1 - eps)
    return float(-np.mean(labels * np.log(probs) + (1 - labels) * np.log(1 - probs)))


# --- command line ----------------------------------------------------------

FLAGS = flags.FLAGS


def define_flags():
    """Flags of the script alone: importing the module defines none."""
    defaults = ChurnConfig()
    flags.DEFINE_integer("train_rows", defaults.train_rows, "Generated training rows.")
    flags.DEFINE_integer("eval_rows", defaults.eval_rows, "Generated validation rows.")
    flags.DEFINE_integer("repeats", defaults.repeats, "R: repeats of the whole comparison.")
    flags.DEFINE_list("hidden_units", [str(u) for u in defaults.hidden_units],
                      "DNN widths (the paper's: 2560,1024,256).")
    flags.DEFINE_integer("hash_buckets", defaults.hash_buckets, "Buckets per categorical.")
    flags.DEFINE_integer("embedding_dim", defaults.embedding_dim, "Embedding width.")
    flags.DEFINE_integer("batch_size", defaults.batch_size, "Training batch size.")
    flags.DEFINE_integer("epochs", defaults.epochs, "Passes over the training rows.")
    flags.DEFINE_enum("optimizer", defaults.optimizer, sorted(OPTIMIZERS), "Optimizer.")
    flags.DEFINE_float("learning_rate", defaults.learning_rate, "Learning rate.")
    flags.DEFINE_bool("linear_decay", defaults.linear_decay,
                      "Decay the learning rate linearly to 0 over the training steps.")
    flags.DEFINE_float("distill_weight", defaults.distill_weight, "Distillation weight.")
    flags.DEFINE_integer("burn_in_steps", defaults.burn_in_steps, "Steps before distilling.")
    flags.DEFINE_string("data_dir", "", "Where to write the generated data (a temp dir if empty).")
    flags.DEFINE_string("output", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                               "results", "criteo_churn.json"),
                        "JSON results file; the table is written next to it as .txt.")


def main(argv):
    del argv
    config = ChurnConfig(
        train_rows=FLAGS.train_rows, eval_rows=FLAGS.eval_rows, repeats=FLAGS.repeats,
        hidden_units=tuple(int(u) for u in FLAGS.hidden_units),
        hash_buckets=FLAGS.hash_buckets, embedding_dim=FLAGS.embedding_dim,
        batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, optimizer=FLAGS.optimizer,
        learning_rate=FLAGS.learning_rate, linear_decay=FLAGS.linear_decay,
        distill_weight=FLAGS.distill_weight,
        burn_in_steps=FLAGS.burn_in_steps, data_dir=FLAGS.data_dir)
    started = time.time()
    results = run(config)
    results["seconds"] = time.time() - started
    table = format_table(results) + f"\nwall time: {results['seconds'] / 60:.1f} min"
    print(table)
    os.makedirs(os.path.dirname(FLAGS.output), exist_ok=True)
    with open(FLAGS.output, "w", encoding="utf-8") as out:
        json.dump(repo_relative(results), out, indent=1)
    with open(os.path.splitext(FLAGS.output)[0] + ".txt", "w", encoding="utf-8") as out:
        out.write(table + "\n")


if __name__ == "__main__":
    define_flags()
    app.run(main)
