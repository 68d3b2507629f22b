"""Hyperparameter search for codistillation with keras-tuner, on the clusters task.

Searches the distillation weight w, the burn-in steps and the learning rate of
two in-process copies (Algorithm 1), minimizing the student's cross entropy on
the clean eval set, and compares the winner with plain training (w = 0).

Why a ``keras_tuner.Tuner`` subclass: keras-tuner drives Keras 3, and its
default trial calls ``model.fit`` with Keras-3 callbacks, which a tf_keras model
does not accept. ``CodistillTuner.run_trial`` trains the tf_keras model itself
and returns the metrics; keras-tuner only proposes values and keeps the trials
on disk, so an interrupted search resumes where it stopped.

Why random search: ``BayesianOptimization`` needs scikit-learn, which is not a
dependency of this project, and random samples also give unbiased views of the
loss against each hyperparameter for the plot.

Why the baseline is searched separately: w = 0 is in the joint space (w moves in
steps of 0.25 so 0 can be drawn), but random search draws it in only 1 trial of
9, and retraining w = 0 at the winner's learning rate would hand plain training
a rate tuned for codistillation. So plain training gets its own search over the
same learning-rate range (its only hyperparameter), and each arm's best is
retrained on fresh seeds (``confirm``), since the best of many noisy trials is
optimistic, more so for the arm with more trials.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import keras_tuner as kt  # noqa: E402
import numpy as np  # noqa: E402
import tf_keras as keras  # noqa: E402

from tf_codistill.core.model import CodistillModel  # noqa: E402
from tf_codistill.tasks import clusters  # noqa: E402
from tf_codistill.core.teachers import InProcessPeers  # noqa: E402

OBJECTIVE = "eval_loss"


@dataclasses.dataclass(frozen=True)
class TinyConfig:
    """What every trial trains: fixed data, model and length, so only hyperparameters vary."""
    data: clusters.ClustersData = clusters.ClustersData()
    hidden_units: tuple[int, ...] = (64, 64)
    batch_size: int = 64
    epochs: int = 10


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """distill_weight in [0, max] by steps; burn_in_steps a choice; learning rate log-uniform."""
    max_distill_weight: float = 2.0
    distill_weight_step: float = 0.25
    burn_in_steps: tuple[int, ...] = (0, 50, 100, 200)
    min_learning_rate: float = 1e-4
    max_learning_rate: float = 1e-2

    def plain(self) -> "SearchSpace":
        """The same learning-rate range with w = 0 (burn-in then does nothing)."""
        return dataclasses.replace(self, max_distill_weight=0.0, burn_in_steps=(0,))

    def hyperparameters(self) -> kt.HyperParameters:
        if not 0 < self.min_learning_rate < self.max_learning_rate:
            raise ValueError("need 0 < min_learning_rate < max_learning_rate, got "
                             f"{self.min_learning_rate}, {self.max_learning_rate}.")
        if self.max_distill_weight < 0 or not self.burn_in_steps or min(self.burn_in_steps) < 0:
            raise ValueError(f"need max_distill_weight >= 0 and burn-in steps >= 0: {self}")
        hp = kt.HyperParameters()
        if self.max_distill_weight > 0:
            hp.Float("distill_weight", 0.0, self.max_distill_weight, step=self.distill_weight_step)
        else:
            hp.Fixed("distill_weight", 0.0)
        if len(self.burn_in_steps) > 1:
            hp.Choice("burn_in_steps", list(self.burn_in_steps))
        else:
            hp.Fixed("burn_in_steps", self.burn_in_steps[0])
        hp.Float("learning_rate", self.min_learning_rate, self.max_learning_rate, sampling="log")
        return hp


def train_and_evaluate(config: TinyConfig, distill_weight: float, burn_in_steps: int,
                       learning_rate: float, seed: int) -> dict[str, float]:
    """Trains a student (with one in-process peer if w > 0); the student's clean eval.

    With w = 0 no peer is built: the student's training would be the same, at
    twice the cost. The seed fixes both initializations and the data order.
    """
    started = time.time()
    keras.backend.clear_session()
    (x, y), (x_eval, y_eval) = clusters.make_data(config.data)
    spec = config.data

    def mlp(index):
        return clusters.make_mlp(spec.num_features, spec.num_classes, config.hidden_units,
                                 seed * 1000 + index)

    peers = InProcessPeers([mlp(2)]) if distill_weight > 0 else None
    model = CodistillModel(mlp(1), peers, output_kind="softmax",
                           distill_loss="cross_entropy", distill_weight=distill_weight,
                           burn_in_steps=burn_in_steps)
    model.compile(keras.optimizers.Adam(learning_rate),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    keras.utils.set_random_seed(seed)
    model.fit(x, y, batch_size=config.batch_size, epochs=config.epochs, shuffle=True, verbose=0)
    result = model.evaluate(x_eval, y_eval, batch_size=1024, verbose=0, return_dict=True)
    return {OBJECTIVE: float(result["loss"]), "eval_accuracy": float(result["accuracy"]),
            "seconds": time.time() - started}


class CodistillTuner(kt.Tuner):
    """Runs each trial with ``train_and_evaluate``; keras-tuner never touches the model."""

    def __init__(self, oracle, config: TinyConfig, seed: int, **kwargs):
        super().__init__(oracle, **kwargs)
        self.config, self.seed = config, seed

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        return train_and_evaluate(self.config, values["distill_weight"],
                                  values["burn_in_steps"], values["learning_rate"], self.seed)


def search(config: TinyConfig, space: SearchSpace, directory: str, max_trials: int,
           seed: int = 0, verbose: int = 0) -> list[dict]:
    """Random search of ``max_trials`` trials; one record per completed trial.

    Every trial trains with the same ``seed``, so trials differ only by their
    hyperparameters. Trials are kept under ``directory`` in a project named by
    the settings: the same call again resumes (or, if finished, just reloads),
    other settings start their own project.
    """
    if not isinstance(max_trials, int) or max_trials < 1:
        raise ValueError(f"max_trials must be a positive integer, got {max_trials!r}.")
    hyperparameters = space.hyperparameters()
    oracle = kt.oracles.RandomSearchOracle(
        # keras-tuner takes seed 0 for "no seed" (a draw from Python's random), hence + 1.
        objective=kt.Objective(OBJECTIVE, "min"), max_trials=max_trials, seed=seed + 1,
        hyperparameters=hyperparameters, tune_new_entries=False, allow_new_entries=False,
        max_consecutive_failed_trials=1)  # training is deterministic: a failure is a bug
    tuner = CodistillTuner(oracle, config, seed, directory=directory,
                           project_name=_project_name(config, space, seed))
    tuner.search(verbose=verbose)
    records = []
    for trial_id, trial in sorted(tuner.oracle.trials.items(), key=lambda item: int(item[0])):
        if trial.status != "COMPLETED":
            continue
        metrics = {name: float(trial.metrics.get_last_value(name))
                   for name in (OBJECTIVE, "eval_accuracy", "seconds")}
        records.append({"trial": trial_id, "hyperparameters": dict(trial.hyperparameters.values),
                        **metrics})
    return records


def best(records: list[dict]) -> dict | None:
    """The record of least eval loss (None if there are none)."""
    return min(records, key=lambda r: r[OBJECTIVE], default=None)


def confirm(config: TinyConfig, hyperparameters: dict, seeds) -> dict:
    """Retrains ``hyperparameters`` on each seed: per-seed figures, their mean and std."""
    runs = [train_and_evaluate(config, hyperparameters["distill_weight"],
                               hyperparameters["burn_in_steps"],
                               hyperparameters["learning_rate"], seed) for seed in seeds]
    losses = [run[OBJECTIVE] for run in runs]
    return {"hyperparameters": hyperparameters, "seeds": list(seeds), "runs": runs,
            "mean_eval_loss": float(np.mean(losses)), "std_eval_loss": float(np.std(losses)),
            "mean_eval_accuracy": float(np.mean([run["eval_accuracy"] for run in runs]))}


def compare(config: TinyConfig, space: SearchSpace, directory: str, max_trials: int,
            baseline_trials: int, confirm_seeds: int, seed: int = 0, verbose: int = 0) -> dict:
    """Joint search, plain-training search, and both winners retrained on fresh seeds.

    "codistilled" is the best trial with w > 0; "plain" the best with w = 0 in
    either search. Both are retrained on seeds seed+1 .. seed+confirm_seeds
    (fresh initializations and data order, same data as the search).
    """
    if not isinstance(confirm_seeds, int) or confirm_seeds < 0:
        raise ValueError(f"confirm_seeds must be an integer >= 0, got {confirm_seeds!r}.")
    trials = search(config, space, directory, max_trials, seed, verbose)
    baseline = search(config, space.plain(), directory, baseline_trials, seed, verbose)
    winners = {"codistilled": best([r for r in trials if r["hyperparameters"]["distill_weight"] > 0]),
               "plain": best([r for r in trials + baseline
                              if r["hyperparameters"]["distill_weight"] == 0])}
    seeds = range(seed + 1, seed + 1 + confirm_seeds)
    confirmed = {arm: confirm(config, record["hyperparameters"], seeds)
                 for arm, record in winners.items() if record and confirm_seeds}
    return {"trials": trials, "baseline_trials": baseline, "best": best(trials + baseline),
            "best_codistilled": winners["codistilled"], "best_plain": winners["plain"],
            "confirmation": confirmed}


def plot_search(trials: list[dict], baseline_trials: list[dict], path: str,
                confirmation: dict | None = None) -> None:
    """Eval loss against each hyperparameter, one panel each, w = 0 trials marked.

    ``confirmation`` (from ``compare``) goes in the title: the search's best
    points alone would overstate the winner.
    """
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    records = trials + baseline_trials
    codistilled = [r for r in records if r["hyperparameters"]["distill_weight"] > 0]
    plain = [r for r in records if r["hyperparameters"]["distill_weight"] == 0]
    panels = [("distill_weight", "distillation weight w", False, records),
              ("burn_in_steps", "burn-in steps (w > 0 trials only)", False, codistilled),
              ("learning_rate", "learning rate", True, records)]
    figure, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, (name, label, log_x, shown) in zip(axes, panels):
        for group, style in ((codistilled, dict(marker="o", color="tab:blue",
                                                label="codistilled (w > 0)")),
                             (plain, dict(marker="s", color="tab:orange",
                                          label="plain training (w = 0)"))):
            points = [r for r in group if r in shown]
            ax.scatter([r["hyperparameters"][name] for r in points],
                       [r[OBJECTIVE] for r in points], alpha=0.75, **style)
        for record, color in ((best(codistilled), "tab:blue"), (best(plain), "tab:orange")):
            if record:
                ax.axhline(record[OBJECTIVE], color=color, linestyle="--", linewidth=0.8)
        ax.set_xlabel(label)
        ax.set_xscale("log" if log_x else "linear")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("student eval cross entropy (clean labels)")
    axes[0].legend(title="dashed: best of each", fontsize=8)
    title = f"Random search, {len(records)} trials: eval loss vs each hyperparameter"
    if confirmation:
        title += "\nbest of each retrained on fresh seeds: " + ", ".join(
            f"{arm} {c['mean_eval_loss']:.4f} ± {c['std_eval_loss']:.4f} (std, "
            f"{len(c['seeds'])} seeds)" for arm, c in confirmation.items())
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _project_name(config: TinyConfig, space: SearchSpace, seed: int) -> str:
    settings = json.dumps([dataclasses.asdict(config), dataclasses.asdict(space), seed],
                          sort_keys=True)
    return "search_" + hashlib.sha1(settings.encode()).hexdigest()[:12]
