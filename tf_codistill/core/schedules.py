"""The learning-rate recipe of Goyal et al. (2017) for large-batch ImageNet training.

* Linear scaling: the peak rate is ``base_learning_rate * batch_size / 256``.
* Gradual warm-up: from ``base_learning_rate`` up to the peak, linearly over
  ``warmup_steps`` (the paper: 5 epochs), so a large batch starts where a
  batch of 256 would.
* Step decay: multiplied by ``decay_rate`` (0.1) at each boundary (the paper:
  epochs 30, 60 and 80).

``WeightDecaySchedule`` scales the regularization losses by step, e.g. as Sodhani
et al. (2021) do for codistillation, lowering weight decay with the learning rate.
"""

from __future__ import annotations

import math
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


class WeightDecaySchedule:
    """A piecewise-constant multiplier of the regularization losses, by optimizer step.

    ``scales[0]`` applies before ``boundaries[0]`` and ``scales[i]`` from step
    ``boundaries[i - 1]`` on, so ``WeightDecaySchedule([100, 200], [1, 0.1, 0])``
    keeps weight decay whole for 100 steps, then a tenth of it, then none.
    """

    def __init__(self, boundaries: Sequence[int], scales: Sequence[float]):
        boundaries, scales = [int(b) for b in boundaries], [float(s) for s in scales]
        if len(scales) != len(boundaries) + 1:
            raise ValueError(f"Give one scale more than boundaries (a scale before the first "
                             f"and one after each), got {len(boundaries)} boundaries and "
                             f"{len(scales)} scales.")
        if any(b < 0 for b in boundaries) or \
                any(a >= b for a, b in zip(boundaries, boundaries[1:])):
            raise ValueError(f"boundaries must be strictly increasing steps >= 0, "
                             f"got {boundaries}.")
        if not all(math.isfinite(s) and s >= 0 for s in scales):
            raise ValueError(f"scales must be finite numbers >= 0, got {scales}.")
        self.boundaries, self.scales = boundaries, scales

    @classmethod
    def step_with_lr(cls, lr_decay_boundaries: Sequence[int]) -> "WeightDecaySchedule":
        """Sodhani et al. (2021): x1, x0.1 after the first learning-rate decay, 0 after the second.

        Codistillation regularizes by itself; lowering weight decay as the rate decays
        accounts for it (with weight decay 1e-4: 1e-4, then 1e-5, then 0).
        Boundaries after the second do not change the scale.
        """
        if len(lr_decay_boundaries) < 2:
            raise ValueError(f"step_with_lr needs at least two learning-rate decay boundaries, "
                             f"got {list(lr_decay_boundaries)}.")
        return cls(lr_decay_boundaries[:2], [1.0, 0.1, 0.0])

    def __call__(self, step) -> tf.Tensor:
        passed = tf.cast(tf.cast(step, tf.int64) >= tf.constant(self.boundaries, tf.int64),
                         tf.int32)
        return tf.gather(tf.constant(self.scales, tf.float32), tf.reduce_sum(passed))

    def __repr__(self):
        return f"WeightDecaySchedule(boundaries={self.boundaries}, scales={self.scales})"


def weight_decay_schedule(name: str, lr_decay_boundaries: Sequence[int] = ()
                          ) -> WeightDecaySchedule | None:
    """The schedule of ``--weight_decay_schedule``; None for "constant" (no scaling)."""
    if name == "constant":
        return None
    if name == "step_with_lr":
        return WeightDecaySchedule.step_with_lr(lr_decay_boundaries)
    raise ValueError(f"Unknown weight decay schedule {name!r}; choose 'constant' or "
                     "'step_with_lr'.")
