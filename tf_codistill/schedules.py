"""The learning-rate recipe of Goyal et al. (2017) for large-batch ImageNet training.

* Linear scaling: the peak rate is ``base_learning_rate * batch_size / 256``.
* Gradual warm-up: from ``base_learning_rate`` up to the peak, linearly over
  ``warmup_steps`` (the paper: 5 epochs), so a large batch starts where a
  batch of 256 would.
* Step decay: multiplied by ``decay_rate`` (0.1) at each boundary (the paper:
  epochs 30, 60 and 80).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras as keras

REFERENCE_BATCH_SIZE = 256


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Optimizer steps in one epoch (a partial last batch counts)."""
    return -(-int(num_examples) // int(batch_size))


@keras.utils.register_keras_serializable(package="tf_codistill")
class GoyalSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linearly scaled rate with gradual warm-up and step decays, by optimizer step."""

    def __init__(self, batch_size: int, warmup_steps: int,
                 decay_boundaries: Sequence[int] = (), *,
                 base_learning_rate: float = 0.1, decay_rate: float = 0.1,
                 reference_batch_size: int = REFERENCE_BATCH_SIZE):
        boundaries = [int(b) for b in decay_boundaries]
        if batch_size < 1 or reference_batch_size < 1:
            raise ValueError(f"batch sizes must be >= 1, got {batch_size} and "
                             f"{reference_batch_size}.")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}.")
        if boundaries != sorted(boundaries) or len(set(boundaries)) != len(boundaries):
            raise ValueError(f"decay_boundaries must be strictly increasing steps, "
                             f"got {list(decay_boundaries)}.")
        if boundaries and boundaries[0] < warmup_steps:
            raise ValueError(f"The first decay boundary ({boundaries[0]}) falls inside "
                             f"the warm-up ({warmup_steps} steps); put decays after it.")
        self.batch_size = int(batch_size)
        self.warmup_steps = int(warmup_steps)
        self.decay_boundaries = boundaries
        self.base_learning_rate = float(base_learning_rate)
        self.decay_rate = float(decay_rate)
        self.reference_batch_size = int(reference_batch_size)

    @property
    def peak_learning_rate(self) -> float:
        return self.base_learning_rate * self.batch_size / self.reference_batch_size

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        peak = self.peak_learning_rate
        warmup = tf.cast(max(self.warmup_steps, 1), tf.float32)
        warming = self.base_learning_rate + (peak - self.base_learning_rate) * step / warmup
        decays = tf.add_n([tf.cast(step >= b, tf.float32) for b in self.decay_boundaries]
                          or [tf.constant(0.0)])
        decayed = peak * tf.pow(self.decay_rate, decays)
        return tf.where(step < self.warmup_steps, warming, decayed)

    def get_config(self):
        return {"batch_size": self.batch_size, "warmup_steps": self.warmup_steps,
                "decay_boundaries": self.decay_boundaries,
                "base_learning_rate": self.base_learning_rate,
                "decay_rate": self.decay_rate,
                "reference_batch_size": self.reference_batch_size}


def goyal_schedule_in_epochs(batch_size: int, num_examples: int, warmup_epochs: float = 5,
                             decay_epochs: Sequence[float] = (30, 60, 80),
                             **kwargs) -> GoyalSchedule:
    """The schedule with warm-up and decays given in epochs, as in the paper."""
    per_epoch = steps_per_epoch(num_examples, batch_size)
    return GoyalSchedule(batch_size, round(warmup_epochs * per_epoch),
                         [round(e * per_epoch) for e in decay_epochs], **kwargs)
