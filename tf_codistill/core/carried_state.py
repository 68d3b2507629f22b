"""Models that carry state across batches (the stateful LM): the one protocol for it.

Such a model keeps per-stream state in variables that belong to its own input
streams: checkpoints keep them, peers never receive them, and evaluation zeroes
them before reading other streams.
"""

from __future__ import annotations

import abc

import tensorflow as tf


class CarriesState(abc.ABC):
    """Mixed into a keras.Model whose call reads and updates carried state."""

    @property
    @abc.abstractmethod
    def carried_state_variables(self) -> list[tf.Variable]:
        """The per-stream state variables."""

    @abc.abstractmethod
    def reset_states(self) -> None:
        """Zeroes the carried state, e.g. before reading a new set of streams."""


def carried_state_variables(model) -> list[tf.Variable]:
    return list(model.carried_state_variables) if isinstance(model, CarriesState) else []


def reset_carried_state(model) -> None:
    if isinstance(model, CarriesState):
        model.reset_states()
