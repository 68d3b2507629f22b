"""The optimizers --optimizer names, each built from the trainer config and a rate."""

from __future__ import annotations

import tf_keras as keras

OPTIMIZERS = {
    "adam": lambda rate, trainer: keras.optimizers.Adam(rate),
    "adagrad": lambda rate, trainer: keras.optimizers.Adagrad(rate),
    "sgd": lambda rate, trainer: keras.optimizers.SGD(rate),
    "momentum": lambda rate, trainer: keras.optimizers.SGD(rate, momentum=trainer.momentum),
}


def make_optimizer(trainer, rate) -> keras.optimizers.Optimizer:
    """The optimizer of ``trainer.optimizer`` at ``rate`` (a float or a schedule)."""
    return OPTIMIZERS[trainer.optimizer](rate, trainer)
