"""CodistillModel: the codistillation train step (``core.training``) as a tf_keras Model.

Given a Keras 3 student it builds the Keras 3 twin (``core.keras3_model``) instead.
"""

from __future__ import annotations

import tf_keras as keras

from tf_codistill.core import compat
from tf_codistill.core.training import CodistillTraining


class CodistillModel(CodistillTraining, keras.Model):
    __doc__ = ("Wraps a student model and a source of teacher predictions "
               "(a tf_keras Model; a Keras 3 student gives the Keras 3 twin).\n"
               + CodistillTraining.__doc__.split("\n", 2)[2])
    _keras = keras
    _flavour = compat.TF_KERAS

    def __new__(cls, student=None, *args, **kwargs):
        if cls is CodistillModel and compat.is_keras3_model(student):
            from tf_codistill.core.keras3_model import Keras3CodistillModel  # Keras 3 when used
            return Keras3CodistillModel(student, *args, **kwargs)
        return super().__new__(cls, student, *args, **kwargs)

    def _compiled_metrics(self) -> list:
        return list(self.compiled_metrics.metrics) if self.compiled_metrics else []

    def _update_compiled_metrics(self, y, logits, sample_weight):
        self.compiled_metrics.update_state(y, logits, sample_weight)

    def _scale_loss(self, loss):
        """The loss a LossScaleOptimizer differentiates (scaled up against float16
        underflow), else ``loss``; ``_unscale_gradients`` undoes it."""
        if isinstance(self.optimizer, keras.mixed_precision.LossScaleOptimizer):
            return self.optimizer.get_scaled_loss(loss)
        return loss

    def _unscale_gradients(self, gradients):
        if isinstance(self.optimizer, keras.mixed_precision.LossScaleOptimizer):
            return self.optimizer.get_unscaled_gradients(gradients)
        return gradients
