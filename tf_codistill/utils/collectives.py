"""The one collective the package runs outside a train step: an all-gather of integers."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf


def gather_ints(strategy: tf.distribute.Strategy, values: Sequence[int]) -> np.ndarray:
    """Every replica's ``values``, one row per replica (shape [replicas, len(values)]).

    A collective: every worker of the group calls it at the same point, with as many
    values. Workers that must decide alike (which peer snapshot to swap in, whether all
    see the model_dir) decide on its answer.
    """
    local = np.asarray([list(values)], np.int64)
    gathered = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(local))
    return strategy.gather(gathered, axis=0).numpy()
