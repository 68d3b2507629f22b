"""The two Keras flavours: tf_keras (the Keras 2 API, the package's own) and Keras 3.

``CodistillModel`` trains models of either flavour with one train step, on one host:
Keras 3's ``model.fit`` fails under MultiWorkerMirroredStrategy on TF 2.21
(keras-team/keras#20585) and its TPU path on the TensorFlow backend is not tested
upstream, so under those strategies a Keras 3 model is refused with the tf_keras way.
Every model of one CodistillModel is of one flavour: the wrapper subclasses that
flavour's Model.
"""

from __future__ import annotations

import sys

import tensorflow as tf
import tf_keras

TF_KERAS = "tf_keras"
KERAS3 = "Keras 3"
KERAS3_ISSUE = "keras-team/keras#20585"
TF_KERAS_HINT = ("build the models with tf_keras (`import tf_keras as keras`, or set "
                 "TF_USE_LEGACY_KERAS=1 before importing tensorflow and use tf.keras)")


def is_keras3_model(model) -> bool:
    keras3 = sys.modules.get("keras")  # a Keras 3 model means Keras 3 is imported
    return (keras3 is not None and hasattr(keras3, "Model")
            and isinstance(model, keras3.Model) and not isinstance(model, tf_keras.Model))


def keras_of(model):
    """The Keras module of ``model``'s flavour (its callbacks, metrics, optimizers)."""
    return sys.modules["keras"] if is_keras3_model(model) else tf_keras


def flavour(model, argument: str) -> str:
    """TF_KERAS or KERAS3; a TypeError naming ``argument`` for anything but a Keras model."""
    if isinstance(model, tf_keras.Model):
        return TF_KERAS
    if is_keras3_model(model):
        return KERAS3
    raise TypeError(f"{argument} must be a Keras Model (tf_keras, or Keras 3 with the "
                    f"TensorFlow backend), got {type(model).__module__}."
                    f"{type(model).__name__}.")


def require_flavour(model, argument: str, expected: str) -> None:
    """Refuses a model of the other flavour than the student's."""
    found = flavour(model, argument)
    if found != expected:
        raise TypeError(f"{argument} is a {found} model but the student is a {expected} "
                        f"one; one CodistillModel trains models of one Keras flavour: "
                        f"build them all with the same `keras`.")


def refuse_keras3_under(strategy: tf.distribute.Strategy) -> None:
    """A Keras 3 model trains on one host only: default or MirroredStrategy."""
    unsupported = (tf.distribute.MultiWorkerMirroredStrategy, tf.distribute.TPUStrategy,
                   tf.distribute.experimental.TPUStrategy)
    if isinstance(strategy, unsupported):
        raise ValueError(
            f"The student is a Keras 3 model and the strategy is "
            f"{type(strategy).__name__}: Keras 3's model.fit fails under "
            f"MultiWorkerMirroredStrategy ({KERAS3_ISSUE}) and its TPU path on the "
            f"TensorFlow backend is not tested upstream. Train Keras 3 models under the "
            f"default strategy or MirroredStrategy, or {TF_KERAS_HINT}.")
