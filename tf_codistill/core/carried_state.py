"""Models that carry state across batches (the stateful LM): the one protocol for it.

Such a model keeps per-stream state in variables that belong to its own input
streams: checkpoints keep them (every replica's, through ``ReplicaCarriedState``),
peers never receive them, and evaluation zeroes them before reading other streams.
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


class ReplicaCarriedState:
    """Every replica's carried state, in variables a checkpoint saves whole.

    A carried-state variable is ON_READ with ONLY_FIRST_REPLICA aggregation (each
    replica keeps the state of its own streams): a checkpoint of it holds the first
    replica's rows only, and restoring it copies those rows to every replica, which
    gives the others the state of streams they do not read. ``gather`` copies the
    state of every replica, of every worker, into one ``[replicas, *shape]`` variable
    per state variable (``variables``, to checkpoint next to the model), and
    ``scatter`` gives each replica its own rows back after a restore. Under a
    multi-worker strategy ``gather`` is a collective: every worker calls it, as every
    worker takes part in each save. The variables live outside the model, so exports
    and the weights peers receive never hold them.
    """

    def __init__(self, model, strategy: tf.distribute.Strategy):
        self._strategy = strategy
        self._carried = carried_state_variables(model)
        replicas = strategy.num_replicas_in_sync
        with strategy.scope():
            self.variables = [
                tf.Variable(tf.zeros((replicas, *variable.shape), variable.dtype),
                            trainable=False, name=f"replica_{variable.name.split(':')[0]}")
                for variable in self._carried]

    @tf.function
    def _gather(self):
        local = self._strategy.run(lambda: [tf.identity(v) for v in self._carried])
        for gathered, value in zip(self.variables, local):
            gathered.assign(tf.reshape(self._strategy.gather(value, axis=0), gathered.shape))

    @tf.function
    def _scatter(self):
        def give_back():
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            for variable, gathered in zip(self._carried, self.variables):
                variable.assign(gathered.read_value()[replica])
        self._strategy.run(give_back)

    def gather(self) -> None:
        """Before a save: every replica's current state into ``variables``."""
        if self._carried:
            self._gather()

    def scatter(self) -> None:
        """After a restore of ``variables``: each replica's state from its rows."""
        if self._carried:
            self._scatter()
