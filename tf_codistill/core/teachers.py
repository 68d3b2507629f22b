"""Where a CodistillModel's teacher predictions come from.

A teacher source answers two questions for the train step:

* which models train *alongside* the student in the same step, each distilling
  from the others (``co_trained_models``: Algorithm 1 with all copies in one
  process), and
* which frozen predictions to add as teachers (``frozen_predictions``: a fixed
  teacher, or peer checkpoints reloaded from other groups), each with a 0/1
  weight so that a peer without a checkpoint yet contributes nothing.

Sources that must act between steps (swapping in freshly reloaded peer weights)
return Keras callbacks from ``callbacks()``; ``CodistillModel.fit`` adds them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tf_codistill.core import compat


class TeacherSource:
    """Base class: no co-trained models and no frozen teachers."""

    # Whether ``frozen_predictions`` gives teachers: a source with frozen teachers says so.
    has_frozen_teachers = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "frozen_predictions" in vars(cls) and not cls.has_frozen_teachers:
            raise TypeError(f"{cls.__name__} defines frozen_predictions but not "
                            "has_frozen_teachers = True; set it, or the train step never "
                            "asks it for teachers.")

    @property
    def co_trained_models(self) -> tuple[keras.Model, ...]:
        return ()

    @property
    def frozen_models(self) -> tuple[keras.Model, ...]:
        """Models whose variables must never change in a train step."""
        return ()

    def frozen_predictions(self, x) -> list[tuple[tf.Tensor, tf.Tensor]]:
        """(logits, weight) of each frozen teacher for the inputs ``x``."""
        return []

    def ready(self):
        """Whether a frozen teacher can count in this step: True, or a boolean tensor.

        While it is False the train step skips the teachers' forward pass and the
        distillation loss (their weight would be zero). Sources whose teachers
        appear later (checkpoint peers that have not published yet) override it.
        """
        return True

    def callbacks(self) -> list[keras.callbacks.Callback]:
        return []

    def close(self) -> None:
        """Releases what the source holds (threads, files); nothing by default."""

    def stats(self) -> dict:
        """What the source did so far (reloads, staleness, bytes read), for metrics.json and
        TensorBoard; empty for sources that exchange nothing."""
        return {}


class InProcessPeers(TeacherSource):
    """Peers of the same architecture trained in the same step (Algorithm 1).

    With N-1 peers given here and the student, each of the N copies distills from
    the mean prediction of the other N-1. Every copy is trained; ``call`` and
    export use the student.
    """

    def __init__(self, peers: Sequence[keras.Model]):
        peers = tuple(peers)
        if not peers:
            raise ValueError("InProcessPeers needs at least one peer model.")
        for index, peer in enumerate(peers):
            compat.flavour(peer, f"peers[{index}]")
        self._peers = peers

    @property
    def co_trained_models(self):
        return self._peers


class FixedTeacher(TeacherSource):
    """Trained models whose predictions stay fixed: offline distillation.

    Given several models, the teacher is their ensemble (the mean of their
    predicted probabilities): the second phase of two-phase distillation.
    """

    has_frozen_teachers = True

    def __init__(self, models: keras.Model | Sequence[keras.Model]):
        models = tuple(models) if isinstance(models, (list, tuple)) else (models,)
        if not models:
            raise ValueError("FixedTeacher needs at least one trained model.")
        for index, model in enumerate(models):
            compat.flavour(model, "teacher" if len(models) == 1 else f"teacher[{index}]")
            model.trainable = False
        self._models = models

    @property
    def frozen_models(self):
        return self._models

    def frozen_predictions(self, x):
        return [(tf.stop_gradient(model(x, training=False)), tf.constant(1.0))
                for model in self._models]


class PriorTeacher(TeacherSource):
    """A fixed distribution as the teacher: label smoothing toward a prior.

    With weight w, distilling from a constant prior p adds w * CE(p, q) to the
    task loss, which is label smoothing toward p: the paper's uniform and
    unigram baselines (section 3.3), in place of a peer's predictions. The
    prior's logits are broadcast over the student's batch and time axes.
    """

    has_frozen_teachers = True

    def __init__(self, prior):
        prior = np.asarray(prior, np.float64)
        if prior.ndim != 1 or prior.size < 2 or np.any(prior < 0) or not prior.sum() > 0:
            raise ValueError("prior must be a 1-D array of >= 2 non-negative weights with a "
                             f"positive sum, got shape {prior.shape}.")
        prior = np.maximum(prior / prior.sum(), 1e-12)  # a class never seen keeps a finite log
        self.log_prior = tf.constant(np.log(prior / prior.sum()), tf.float32)

    def frozen_predictions(self, x):
        return [(self.log_prior, tf.constant(1.0))]
