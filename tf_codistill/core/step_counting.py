"""Callbacks that act every N optimizer steps, shared by the exchange and the runner."""

from __future__ import annotations

import tf_keras as keras


class StepCountingCallback(keras.callbacks.Callback):
    """Knows the optimizer step after each device call without reading it from the device.

    Subclasses act in ``on_step_end(step)``; the count starts from the restored
    step, so actions every N steps stay aligned across resumes. With
    ``steps_per_execution=K`` Keras calls back once per K steps, with the index
    of the call's last step in the epoch: ``step`` then advances by K, and
    ``on_step_end`` runs between executions.
    """

    def __init__(self):
        super().__init__()
        self.step = None
        self._epoch_start = None

    def on_train_begin(self, logs=None):
        self.step = int(self.model.optimizer.iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.step

    def on_train_batch_end(self, batch, logs=None):
        self.step = self._epoch_start + batch + 1
        self.on_step_end(self.step)

    def on_step_end(self, step: int) -> None:
        raise NotImplementedError
