"""Prediction churn: how much two retrains of a model disagree (Anil et al. 2018, 3.5).

Churn is the mean absolute difference between the predicted probabilities of
two models on the same examples. It is a property of a *pair* of models, so the
Keras metric takes the two predictions as its two arguments.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tf_codistill.core import losses

OUTPUT_KINDS = ("probabilities", "sigmoid", "softmax")


def to_probabilities(predictions, output_kind: str = "probabilities") -> tf.Tensor:
    """Probabilities from model outputs: as they are, or from sigmoid/softmax logits."""
    if output_kind not in OUTPUT_KINDS:
        raise ValueError(f"output_kind={output_kind!r} is not known; choose one of "
                         f"{OUTPUT_KINDS}.")
    if output_kind == "probabilities":
        return tf.cast(predictions, tf.float32)
    return losses.probabilities(output_kind, predictions)


def prediction_churn(predictions_a, predictions_b, sample_weight=None, *,
                     output_kind: str = "probabilities") -> tf.Tensor:
    """Mean |p_a - p_b| over examples (and classes), optionally weighted per example."""
    metric = PredictionChurn(output_kind=output_kind)
    metric.update_state(predictions_a, predictions_b, sample_weight)
    return metric.result()


class PredictionChurn(keras.metrics.Mean):
    """Running mean absolute difference of two models' predicted probabilities.

    ``update_state(predictions_a, predictions_b)``: same-shape predictions of
    the two models on one batch; ``output_kind`` says whether they are
    probabilities or sigmoid/softmax logits. Works under tf.distribute like any
    Keras ``Mean``.
    """

    def __init__(self, output_kind: str = "probabilities", name: str = "prediction_churn",
                 **kwargs):
        if output_kind not in OUTPUT_KINDS:
            raise ValueError(f"output_kind={output_kind!r} is not known; choose one of "
                             f"{OUTPUT_KINDS}.")
        super().__init__(name=name, **kwargs)
        self.output_kind = output_kind

    def update_state(self, predictions_a, predictions_b, sample_weight=None):
        a = to_probabilities(predictions_a, self.output_kind)
        b = to_probabilities(predictions_b, self.output_kind)
        if not a.shape.is_compatible_with(b.shape):
            raise ValueError(f"Churn compares predictions of the same shape; got "
                             f"{a.shape} and {b.shape}.")
        difference = tf.abs(a - b)
        if sample_weight is not None:
            sample_weight = tf.cast(sample_weight, tf.float32)
            sample_weight = tf.broadcast_to(
                tf.reshape(sample_weight, [-1] + [1] * (difference.shape.rank - 1)),
                tf.shape(difference))
        return super().update_state(difference, sample_weight)

    def get_config(self):
        return {**super().get_config(), "output_kind": self.output_kind}


def ensemble_probabilities(prediction_sets: Sequence[np.ndarray],
                           output_kind: str = "probabilities") -> np.ndarray:
    """The mean predicted probability of several models: an ensemble's prediction."""
    if not prediction_sets:
        raise ValueError("An ensemble needs at least one model's predictions.")
    return np.mean([to_probabilities(p, output_kind).numpy() for p in prediction_sets],
                   axis=0)


def model_churn(model_a: keras.Model, model_b: keras.Model, inputs: Iterable, *,
                output_kind: str = "sigmoid") -> float:
    """Churn of two models over a dataset of ``features`` or ``(features, label)``."""
    metric = PredictionChurn(output_kind=output_kind)
    for batch in inputs:
        features = batch[0] if isinstance(batch, tuple) else batch
        metric.update_state(model_a(features, training=False),
                            model_b(features, training=False))
    return float(metric.result())


def mean_and_half_range(values: Sequence[float]) -> tuple[float, float]:
    """The paper's summary of repeats: mean +- half the range."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("No values to summarize.")
    return float(values.mean()), float((values.max() - values.min()) / 2)
