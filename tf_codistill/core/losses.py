"""Distillation losses psi(teacher, student) on logits.

Every loss here works on *logits* and returns one value per element of the
prediction without its last axis: shape [batch] for a classifier, [batch, time]
for per-token outputs, so masks and sample weights apply exactly as they do to
the task loss. Reduction over the global batch happens in the model.

Two output kinds are supported:
    * ``softmax``: the last axis holds the logits of mutually exclusive classes.
    * ``sigmoid``: every element of the last axis is an independent binary logit
        (a logistic output has a last axis of size 1).

Teachers are aggregated as the paper does (Algorithm 1): the *mean prediction*
of the peers, i.e. the mean of their probabilities for the probabilistic losses
and the mean of their logits for the logit regression.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import tensorflow as tf

OUTPUT_KINDS = ("softmax", "sigmoid")


@dataclasses.dataclass(frozen=True)
class DistillationLoss:
    """Base class: aggregates teacher logits into a target and scores a student."""

    output_kind: str = "softmax"
    temperature: float = 1.0

    def __post_init__(self):
        if self.output_kind not in OUTPUT_KINDS:
            raise ValueError(f"output_kind={self.output_kind!r} is not supported; "
                             f"choose one of {OUTPUT_KINDS}.")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}.")

    def target(self, teacher_logits: Sequence[tf.Tensor],
               teacher_weights: Sequence[tf.Tensor]) -> tf.Tensor:
        """Weighted mean of the teachers' predictions (weights are 0 or 1)."""
        predictions = [self._prediction(t) for t in teacher_logits]
        total = tf.add_n([tf.cast(w, p.dtype) * p
                          for w, p in zip(teacher_weights, predictions)])
        count = tf.add_n([tf.cast(w, total.dtype) for w in teacher_weights])
        return total / tf.maximum(count, 1.0)

    def __call__(self, target: tf.Tensor, student_logits: tf.Tensor) -> tf.Tensor:
        """Per-element loss, shape ``student_logits.shape[:-1]``."""
        raise NotImplementedError

    def _prediction(self, logits: tf.Tensor) -> tf.Tensor:
        return probabilities(self.output_kind, logits, self.temperature)


class SoftTargetCrossEntropy(DistillationLoss):
    """Cross entropy with the teacher distribution as soft targets (the paper's).

    With a temperature T both sides are softened by T and the loss is scaled by
    T^2 so that its gradients keep their size as T changes (Hinton et al.).
    """

    def __call__(self, target, student_logits):
        student_logits = tf.cast(student_logits, tf.float32)
        target = tf.stop_gradient(tf.cast(target, tf.float32))
        scaled = student_logits / self.temperature
        if self.output_kind == "softmax":
            per_element = tf.nn.softmax_cross_entropy_with_logits(target, scaled)
        else:
            per_element = tf.reduce_mean(
                tf.nn.sigmoid_cross_entropy_with_logits(target, scaled), axis=-1)
        return self.temperature**2 * per_element


class KLDivergence(DistillationLoss):
    """KL(teacher || student) at temperature T, scaled by T^2.

    Same gradients as the soft-target cross entropy; its value is zero when the
    student matches the teacher, which makes it the easier one to read.
    """

    def __call__(self, target, student_logits):
        student_logits = tf.cast(student_logits, tf.float32)
        target = tf.stop_gradient(tf.cast(target, tf.float32))
        scaled = student_logits / self.temperature
        if self.output_kind == "softmax":
            log_student = tf.nn.log_softmax(scaled, axis=-1)
            per_element = tf.reduce_sum(
                _xlogy(target, target) - target * log_student, axis=-1)
        else:
            log_p, log_not_p = tf.math.log_sigmoid(scaled), tf.math.log_sigmoid(-scaled)
            per_element = tf.reduce_mean(
                _xlogy(target, target) + _xlogy(1 - target, 1 - target)
                - target * log_p - (1 - target) * log_not_p, axis=-1)
        return self.temperature**2 * per_element


class LogitSquaredError(DistillationLoss):
    """Mean squared difference between student and mean teacher logits."""

    def _prediction(self, logits):
        return tf.cast(logits, tf.float32)

    def __call__(self, target, student_logits):
        target = tf.stop_gradient(tf.cast(target, tf.float32))
        diff = tf.cast(student_logits, tf.float32) - target
        return tf.reduce_mean(tf.square(diff), axis=-1)


def perplexity(loss: float) -> float:
    """exp(loss) of a cross entropy in nats, capped so a diverged run stays printable."""
    return math.exp(min(loss, 50.0))


DISTILLATION_LOSSES = {
        "cross_entropy": SoftTargetCrossEntropy,
        "kl": KLDivergence,
        "logit_mse": LogitSquaredError,
}


def get_distillation_loss(name: str, output_kind: str = "softmax",
                          temperature: float = 1.0) -> DistillationLoss:
    """Builds a distillation loss from its flag name."""
    if isinstance(name, DistillationLoss):
        return name
    if name not in DISTILLATION_LOSSES:
        raise ValueError(f"distill_loss={name!r} is not a known distillation loss; "
                         f"choose one of {sorted(DISTILLATION_LOSSES)}.")
    return DISTILLATION_LOSSES[name](output_kind=output_kind,
                                     temperature=temperature)


def task_loss_for(output_kind: str):
    """The default task loss for logits of the given kind, unreduced."""
    import tf_keras as keras
    if output_kind == "softmax":
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="none")
    if output_kind == "sigmoid":
        return keras.losses.BinaryCrossentropy(from_logits=True, reduction="none")
    raise ValueError(f"output_kind={output_kind!r} is not supported; "
                     f"choose one of {OUTPUT_KINDS}.")


def probabilities(output_kind: str, logits, temperature: float = 1.0) -> tf.Tensor:
    """Probabilities from logits of ``output_kind``: a softmax over the last axis, or a
    sigmoid per element; the one switch between the two output kinds' predictions."""
    logits = tf.cast(logits, tf.float32) / temperature
    if output_kind == "softmax":
        return tf.nn.softmax(logits, axis=-1)
    return tf.sigmoid(logits)


def _xlogy(x, y):
    return tf.math.xlogy(x, tf.maximum(y, 1e-30))
