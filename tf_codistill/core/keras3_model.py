"""CodistillModel for Keras 3 models (TensorFlow backend), on one host.

The train step is ``CodistillTraining``'s, shared with tf_keras; this class holds
what differs between the flavours: the Keras module, where the compiled metrics
live, and loss scaling (``scale_loss`` here, unscaled by ``apply_gradients``).
``tc.CodistillModel(keras3_student, ...)`` builds it.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_codistill.core import compat
from tf_codistill.core.training import CodistillTraining


class Keras3CodistillModel(CodistillTraining, keras.Model):
    """``CodistillModel`` as a Keras 3 Model; default strategy or MirroredStrategy only."""

    _keras = keras
    _flavour = compat.KERAS3

    def __init__(self, student, *args, **kwargs):
        compat.refuse_keras3_under(tf.distribute.get_strategy())
        if kwargs.get("noise_scale_interval") is not None:
            raise ValueError("noise_scale_interval measures the gradient noise scale of "
                             "tf_keras models only (it all-reduces the gradients itself, "
                             "which Keras 3's apply_gradients cannot be told); pass None, or "
                             f"{compat.TF_KERAS_HINT}.")
        super().__init__(student, *args, **kwargs)

    def _compiled_metrics(self) -> list:
        compiled = getattr(self, "_compile_metrics", None)
        return [compiled] if compiled is not None else []

    def _update_compiled_metrics(self, y, logits, sample_weight):
        for metric in self._compiled_metrics():
            metric.update_state(y, logits, sample_weight)

    def _scale_loss(self, loss):
        """Every Keras 3 optimizer scales (a LossScaleOptimizer; the others return
        ``loss``), and its ``apply_gradients`` unscales."""
        return self.optimizer.scale_loss(loss)

    def _unscale_gradients(self, gradients):
        return gradients
