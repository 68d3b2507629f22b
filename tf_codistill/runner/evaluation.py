"""Held-out loss of a model or of an ensemble, from the checkpoints runs keep.

The paper's 2-ensemble baseline averages the *predicted probabilities* of
independently trained models; its loss is the cross entropy of that mean.
Members are evaluated in lockstep on the same held-out batches (stateful LM
members each carry their own state over the same streams), so one model is
the 1-member case and its loss equals ``model.evaluate``'s.

Validation curves come from the checkpoints a run kept (``--keep_checkpoints=0``
keeps one per ``--steps_per_loop``), so training pays nothing for them and any
set of runs can be compared afterwards on one common held-out stream.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
from typing import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tf_codistill.core.carried_state import reset_carried_state
from tf_codistill.core.training import first_rows
from tf_codistill import config as config_lib
from tf_codistill.config import layout
from tf_codistill import tasks

_CHECKPOINT_NUMBER = re.compile(r"-(\d+)$")


def held_out_batches(task, strategy: tf.distribute.Strategy, steps: int | None):
    """The task's held-out batches distributed by ``strategy``: ``steps`` of them, or one
    pass when ``steps`` is None."""
    return itertools.islice(strategy.distribute_datasets_from_function(task.eval_dataset), steps)


def load_run_config(group_dir: str) -> config_lib.RunConfig:
    """The RunConfig a group wrote into ``<group_dir>/config.json``, its task sections
    resolved."""
    path = layout.GroupLayout(group_dir).config
    if not tf.io.gfile.exists(path):
        raise config_lib.ConfigError(
            f"{group_dir} holds no config.json: pass the directory of a trained group, "
            "e.g. <model_dir>/group_0 or <model_dir>/baseline/group_0.")
    return tasks.resolve(config_lib.read(path))


def check_same_model(configs: Sequence[config_lib.RunConfig], what: str) -> None:
    """Members of an ensemble must share the task and the architecture."""
    first = configs[0]
    for other in configs[1:]:
        if (other.task, other.model) != (first.task, first.model):
            raise config_lib.ConfigError(
                f"{what}: {other.group_dir} trained --task={other.task} with "
                f"{other.model}, but {first.group_dir} trained --task={first.task} with "
                f"{first.model}; pass runs of one task and architecture.")


def checkpoint_steps(group_dir: str) -> dict[int, str]:
    """{step: checkpoint path} of every checkpoint a group kept."""
    state = tf.train.get_checkpoint_state(layout.GroupLayout(group_dir).checkpoints)
    if state is None:
        return {}
    paths = {}
    for path in state.all_model_checkpoint_paths:
        match = _CHECKPOINT_NUMBER.search(path)
        if match:
            paths[int(match.group(1))] = path
    return dict(sorted(paths.items()))


def latest_checkpoint(group_dir: str) -> str:
    path = tf.train.latest_checkpoint(layout.GroupLayout(group_dir).checkpoints)
    if path is None:
        raise config_lib.ConfigError(
            f"{group_dir} has no checkpoint yet: train it first (the train command writes "
            f"{layout.GroupLayout(group_dir).checkpoints}/).")
    return path


def restore_student(student: keras.Model, checkpoint_path: str) -> None:
    """Loads the student's weights from a train checkpoint (optimizer and peers ignored).

    A stateful LM's carried state is left out (it starts from zero anyway), so a run
    trained at one batch size can be scored at another.
    """
    restore_checkpoint(tf.train.Checkpoint(model=tf.train.Checkpoint(
        student=_without_carried_state(student))),
                       checkpoint_path, student,
                       "Its run used another architecture or strategy; rebuild the model "
                       "the way that run did.")


def _without_carried_state(model: keras.Model):
    """The model, or a stand-in tracking all its children but the carried state's."""
    carried = {id(v) for v in getattr(model, "carried_state_variables", [])}
    if not carried:
        return model
    tracked = model._trackable_children()  # pylint: disable=protected-access
    children = {name: child for name, child in tracked.items()
                if not _all_carried(child, carried)}
    return tf.train.Checkpoint(**children)


def _all_carried(child, carried: set[int]) -> bool:
    variables = tf.nest.flatten(child) if isinstance(child, (list, tuple)) else [child]
    return all(isinstance(v, tf.Variable) and id(v) in carried for v in variables)


def restore_checkpoint(checkpoint: tf.train.Checkpoint, path: str, model: keras.Model,
                       advice: str, keep_carried_state: bool = False) -> None:
    """Restores ``path`` (extra saved objects ignored) and zeroes ``model``'s carried state.

    A checkpoint of another model is a ConfigError naming it, with ``advice``.
    The carried state belongs to streams the new reader does not continue, unless
    ``keep_carried_state``: a training resume that continues those very streams.
    """
    try:
        checkpoint.restore(path).expect_partial()
    except (tf.errors.OpError, ValueError, AssertionError) as error:
        raise config_lib.ConfigError(
            f"Cannot restore {path} ({type(error).__name__}: "
            f"{str(error).splitlines()[0]}). {advice}") from None
    if not keep_carried_state:
        reset_carried_state(model)


def mean_probability_nll(output_kind: str, logits: Sequence[tf.Tensor], labels) -> tf.Tensor:
    """Per-element negative log likelihood of the members' mean predicted probability."""
    log_members = tf.math.log(float(len(logits)))
    if output_kind == "softmax":
        log_probs = tf.stack([tf.nn.log_softmax(tf.cast(l, tf.float32)) for l in logits])
        log_mean = tf.reduce_logsumexp(log_probs, axis=0) - log_members
        labels = tf.cast(labels, tf.int32)
        if labels.shape.rank == log_mean.shape.rank:  # class ids as [..., 1]
            labels = tf.squeeze(labels, -1)
        return -tf.gather(log_mean, labels, batch_dims=labels.shape.rank)
    if output_kind == "sigmoid":
        stacked = tf.stack([tf.cast(l, tf.float32) for l in logits])
        log_p = tf.reduce_logsumexp(tf.math.log_sigmoid(stacked), axis=0) - log_members
        log_not_p = tf.reduce_logsumexp(tf.math.log_sigmoid(-stacked), axis=0) - log_members
        labels = tf.reshape(tf.cast(labels, tf.float32), tf.shape(log_p))
        return -(labels * log_p + (1.0 - labels) * log_not_p)
    raise ValueError(f"output_kind must be 'softmax' or 'sigmoid', got {output_kind!r}.")


def ensemble_loss(task, strategy: tf.distribute.Strategy, members: Sequence[keras.Model],
                  steps: int | None = None) -> float:
    """Held-out cross entropy of the members' mean probability (one member: its own loss).

    ``steps`` batches of ``task.eval_dataset`` are read; None reads one pass.
    Stateful members start from zero state.
    """
    for member in members:
        reset_carried_state(member)

    def replica_step(batch):
        x, y, weights = keras.utils.unpack_x_y_sample_weight(batch)
        nll = mean_probability_nll(task.output_kind,
                                   [m(x, training=False) for m in members], y)
        weights = tf.ones_like(nll) if weights is None else tf.reshape(
            tf.cast(weights, tf.float32), tf.shape(nll))
        return tf.reduce_sum(nll * weights), tf.reduce_sum(weights)

    @tf.function
    def step(batch):
        per_replica = strategy.run(replica_step, args=(batch,))
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, t, axis=None)
                for t in per_replica]

    total, count = 0.0, 0.0
    for batch in held_out_batches(task, strategy, steps):
        batch_total, batch_count = step(batch)
        total += float(batch_total)
        count += float(batch_count)
    if not count:
        raise config_lib.ConfigError(
            "The held-out set is empty: raise --validation_fraction or pass --eval_files.")
    return total / count


def teacher_agreement(task, strategy: tf.distribute.Strategy, student: keras.Model,
                      teacher, steps: int | None = None, rows: int | None = None) -> dict:
    """How much the student agrees with its teacher on held-out data: the online view of
    prediction churn (``core.churn``).

    The teacher's prediction is the mean probability of its frozen models that hold
    weights (peers that published nothing are left out), as in the distillation
    target at temperature 1. Returns ``teacher_top1_agreement`` (share of examples,
    or tokens, where the arg-max agrees; for sigmoid outputs, the side of 0.5),
    ``teacher_prob_abs_diff`` (mean |p_student - p_teacher| over examples and
    classes, ``churn.PredictionChurn``) and, for softmax outputs,
    ``teacher_total_variation`` (half the summed difference over classes, per
    example); {} when there is no teacher model or none held weights.
    ``steps`` batches of ``task.eval_dataset`` (None: one pass); stateful models
    start from zero state. ``rows``: the teacher copies score the first rows of each
    batch only (``CodistillModel.distill_rows``), and the agreement covers those.
    """
    from tf_codistill.core import churn

    if not getattr(teacher, "frozen_models", ()):
        return {}
    for model in (student, *teacher.frozen_models):
        if hasattr(model, "reset_states"):
            model.reset_states()
    softmax = task.output_kind == "softmax"
    with strategy.scope():
        agree = keras.metrics.Mean()
        difference = churn.PredictionChurn("probabilities")
        variation = keras.metrics.Mean()
        covered = keras.metrics.Sum()

    def replica_step(batch):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
        student_p = churn.to_probabilities(student(x, training=False), task.output_kind)
        x, student_p = first_rows((x, student_p), rows)
        total, weight = tf.zeros_like(student_p), tf.constant(0.0)
        for logits, available in teacher.frozen_predictions(x):
            total += available * churn.to_probabilities(logits, task.output_kind)
            weight += available
        teacher_p = tf.math.divide_no_nan(total, weight)
        if softmax:
            same = tf.equal(tf.argmax(student_p, -1), tf.argmax(teacher_p, -1))
            tv = 0.5 * tf.reduce_sum(tf.abs(student_p - teacher_p), -1)
        else:
            same = tf.equal(student_p > 0.5, teacher_p > 0.5)
            tv = tf.abs(student_p - teacher_p)
        on = tf.cast(weight > 0, tf.float32)
        agree.update_state(tf.cast(same, tf.float32), tf.broadcast_to(on, tf.shape(same)))
        variation.update_state(tv, tf.broadcast_to(on, tf.shape(tv)))
        # One weight per example (PredictionChurn broadcasts it over the other axes).
        first = tf.shape(student_p)[0]
        difference.update_state(student_p, teacher_p, tf.fill([first], on))
        covered.update_state(on)

    @tf.function
    def step(batch):
        strategy.run(replica_step, args=(batch,))

    for batch in held_out_batches(task, strategy, steps):
        step(batch)
    if not float(covered.result()):
        return {}
    result = {"teacher_top1_agreement": float(agree.result()),
              "teacher_prob_abs_diff": float(difference.result())}
    if softmax:
        result["teacher_total_variation"] = float(variation.result())
    return result


def pairwise_churn(task, strategy: tf.distribute.Strategy, members: Sequence[keras.Model],
                   steps: int | None = None) -> dict[tuple[int, int], dict]:
    """Prediction churn of every pair of members on the same held-out batches (Anil et al.
    2018, Table 1): {(i, j): {"mean_abs_diff", "top1_disagreement"}} for i < j.

    ``mean_abs_diff`` is mean |p_i - p_j| over examples (tokens) and classes
    (``churn.PredictionChurn``); ``top1_disagreement`` the share of examples whose arg-max
    (for sigmoid outputs, side of 0.5) differs. ``steps`` batches of
    ``task.eval_dataset`` (None: one pass); stateful members start from zero state.
    """
    from tf_codistill.core import churn

    for member in members:
        reset_carried_state(member)
    pairs = [(i, j) for i in range(len(members)) for j in range(i + 1, len(members))]
    with strategy.scope():
        differences = {pair: churn.PredictionChurn("probabilities") for pair in pairs}
        disagreements = {pair: keras.metrics.Mean() for pair in pairs}

    def replica_step(batch):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
        probabilities = [churn.to_probabilities(m(x, training=False), task.output_kind)
                         for m in members]
        if task.output_kind == "softmax":
            top = [tf.argmax(p, -1) for p in probabilities]
        else:
            top = [p > 0.5 for p in probabilities]
        for i, j in pairs:
            differences[i, j].update_state(probabilities[i], probabilities[j])
            disagreements[i, j].update_state(tf.cast(tf.not_equal(top[i], top[j]), tf.float32))

    @tf.function
    def step(batch):
        strategy.run(replica_step, args=(batch,))

    for batch in held_out_batches(task, strategy, steps):
        step(batch)
    return {pair: {"mean_abs_diff": float(differences[pair].result()),
                   "top1_disagreement": float(disagreements[pair].result())}
            for pair in pairs}


@dataclasses.dataclass
class Evaluator:
    """Evaluates groups (alone or as ensembles) of one task on one held-out stream.

    ``eval_config`` fixes the held-out data, batch size and ``eval_steps``; the
    members are rebuilt as that config builds its model, in ``strategy``'s
    scope, and loaded from the groups' checkpoints.
    """

    eval_config: config_lib.RunConfig
    strategy: tf.distribute.Strategy

    def __post_init__(self):
        self.task = tasks.get_task(self.eval_config)
        self.task.check_inputs()
        self._models: list[keras.Model] = []

    def _members(self, count: int) -> list[keras.Model]:
        per_replica = self.eval_config.trainer.batch_size // self.strategy.num_replicas_in_sync
        with self.strategy.scope():
            while len(self._models) < count:
                self._models.append(self.task.build_model(per_replica))
        return self._models[:count]

    def churn(self, checkpoint_paths: Sequence[str]) -> dict[tuple[int, int], dict]:
        """``pairwise_churn`` of these checkpoints' models."""
        members = self._members(len(checkpoint_paths))
        for member, path in zip(members, checkpoint_paths):
            restore_student(member, path)
        return pairwise_churn(self.task, self.strategy, members,
                              self.eval_config.trainer.eval_steps or None)

    def loss(self, checkpoint_paths: Sequence[str]) -> float:
        """Held-out loss of the ensemble of these checkpoints (one path: one model)."""
        members = self._members(len(checkpoint_paths))
        for member, path in zip(members, checkpoint_paths):
            restore_student(member, path)
        return ensemble_loss(self.task, self.strategy, members,
                             self.eval_config.trainer.eval_steps or None)

    def curve(self, group_dirs: Sequence[str]) -> list[dict]:
        """[{step, loss}] at every step at which all the groups kept a checkpoint."""
        steps = [checkpoint_steps(d) for d in group_dirs]
        common = sorted(set.intersection(*(set(s) for s in steps)))
        if not common:
            raise config_lib.ConfigError(
                f"{list(group_dirs)} kept no checkpoint at a common step; train them with the "
                "same --steps_per_loop and --keep_checkpoints=0.")
        return [{"step": step, "loss": self.loss([s[step] for s in steps])}
                for step in common]


def steps_to_reach(curve: Sequence[dict], target: float) -> int | None:
    """The first step at which a curve's loss is <= target; None if it never is."""
    for point in curve:
        if point["loss"] <= target:
            return point["step"]
    return None


def best_loss(curve: Sequence[dict]) -> float:
    return float(np.min([point["loss"] for point in curve]))
