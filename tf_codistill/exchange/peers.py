"""Teachers from other groups: frozen copies reloaded from the peers' published weights.

Each group publishes its student's weights (``PublishCallback``); every other
group polls them in a background thread (``snapshots.PeerPoller``) and, every
``reload_interval`` steps, swaps the freshest verified snapshot into a frozen
teacher copy between two steps (``CheckpointPeers``). A peer that has published
nothing yet contributes nothing: its 0/1 weight in the teacher mean stays 0. A
peer that sent nothing new for more than ``max_staleness`` of the student's
steps (it died, stalled, or is restarting) gets weight 0 again until it
publishes again: a dead peer stops pulling its partners toward its old model.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras
from absl import logging

from tf_codistill.exchange import snapshots
from tf_codistill.runner.callbacks import StepCountingCallback
from tf_codistill.core.teachers import TeacherSource


def exchanged_variables(model: keras.Model) -> list[tf.Variable]:
    """The variables a peer needs: all weights but per-stream carried state."""
    carried = {id(v) for v in getattr(model, "carried_state_variables", [])}
    return [v for v in model.weights if id(v) not in carried]


def exchanged_names(model: keras.Model) -> list[str]:
    """Position-based names, identical for every copy of one architecture.

    Keras variable names carry per-process layer counters ("dense_3"), so peers
    are matched by position and shape; the short name keeps errors readable.
    """
    return [f"{index:03d}/{variable.name.split('/')[-1].split(':')[0]}"
            for index, variable in enumerate(exchanged_variables(model))]


TEACHER_COMPUTE_POLICY = {"float32": "float32", "bfloat16": "mixed_bfloat16",
                          "float16": "mixed_float16", "int8": "mixed_bfloat16"}


def build_teacher_copy(build_model: Callable[[], keras.Model], precision: str) -> keras.Model:
    """Builds a copy whose forward pass runs at the teacher precision.

    Variables stay float32 (Keras mixed precision); 16-bit compute is where a
    cheaper teacher pays off, since the paper finds teachers need no precision.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(TEACHER_COMPUTE_POLICY[precision])
    try:
        return build_model()
    finally:
        keras.mixed_precision.set_global_policy(previous)


def named_weights(model: keras.Model) -> list[tuple[str, np.ndarray]]:
    """This worker's copy of each exchanged variable, read without any collective.

    Reading a synchronized-on-read variable (batch-norm statistics) in the
    cross-replica context would all-reduce across workers, and only the chief
    publishes; the first local replica's value is what the peers need.
    """
    strategy = model.distribute_strategy
    return [(name, strategy.experimental_local_results(variable)[0].numpy())
            for name, variable in zip(exchanged_names(model), exchanged_variables(model))]


class CheckpointPeers(TeacherSource):
    """Frozen copies of peer groups' models, reloaded from their published weights.

    Args:
      peer_directories: each peer's publish directory.
      build_model: builds one copy of the architecture (called in the strategy
        scope by the caller of this constructor).
      reload_interval: steps between swaps of fresh weights into the copies.
      poll_interval_s: how often the background thread looks for new weights.
      staleness_warning_s: warn when a peer published nothing new for this long.
      max_staleness: a peer whose newest snapshot reached this student more
        than this many of its steps ago gets weight 0 until a newer one arrives
        (checked at every reload); None never drops a peer. A peer that keeps
        publishing stays a teacher however far behind it trains (restarted from
        an old checkpoint, or slower): at the clusters task such a peer still
        helps (benchmarks/fault_soak.py).
    """

    def __init__(self, peer_directories: Sequence[str], build_model: Callable[[], keras.Model],
                 reload_interval: int = 50, poll_interval_s: float = 5.0,
                 staleness_warning_s: float = 600.0, max_staleness: int | None = None):
        if reload_interval < 1:
            raise ValueError(f"reload_interval must be >= 1, got {reload_interval}.")
        self.peer_directories = list(peer_directories)
        self.reload_interval = reload_interval
        self._copies = [build_model() for _ in self.peer_directories]
        for copy in self._copies:
            copy.trainable = False
        self._available = [tf.Variable(0.0, trainable=False, name=f"peer{i}_available")
                           for i in range(len(self._copies))]
        self._poller = snapshots.PeerPoller(self.peer_directories, poll_interval_s,
                                           staleness_warning_s)
        self._pending: dict[int, snapshots.PeerSnapshot] = {}
        self.peer_steps: dict[int, int] = {}
        self.max_staleness_steps = 0
        self.swaps = 0
        self.max_staleness = max_staleness
        self.dropped: set[int] = set()  # peers at weight 0 for staleness, now
        self.peers_dropped = 0  # times a peer was dropped
        self.teacher_dropped_steps = 0  # student steps x peers spent dropped
        self._checked_step = None
        self._received_at: dict[int, int] = {}  # the student's step at each peer's last swap

    @property
    def frozen_models(self):
        return tuple(self._copies)

    def frozen_predictions(self, x):
        return [(tf.stop_gradient(copy(x, training=False)), available)
                for copy, available in zip(self._copies, self._available)]

    def callbacks(self):
        return [_ReloadCallback(self)]

    def swap_in_new_weights(self, own_step: int, agree=None) -> int:
        """Assigns every newer peer snapshot to its copy; returns how many.

        A copy is built by its first forward pass; snapshots that arrive before
        that wait for the next swap. ``agree`` maps {peer: step} to the subset
        every worker of the group holds (see ``agreed_on_all_workers``), so the
        workers of one synchronous group never train against different teachers.
        """
        self._pending.update(self._poller.take_new())
        ready = {i: s.step for i, s in self._pending.items() if self._copies[i].built}
        if agree is not None:
            ready = agree(ready)
        for index in sorted(ready):
            snapshot = self._pending.pop(index)
            self._assign(index, snapshot)
            self.peer_steps[index] = snapshot.step
            self._received_at[index] = own_step
            self.swaps += 1
        for step in self.peer_steps.values():
            self.max_staleness_steps = max(self.max_staleness_steps, own_step - step)
        self._drop_stale_peers(own_step)
        return len(ready)

    def _drop_stale_peers(self, own_step: int) -> None:
        """Weight 0 for peers silent too long; their next snapshot (assigned) brings them back.

        Every worker of a group decides alike: the steps compared are agreed ones.
        """
        if self._checked_step is not None:
            self.teacher_dropped_steps += len(self.dropped) * max(0, own_step -
                                                                  self._checked_step)
        self._checked_step = own_step
        if self.max_staleness is None:
            return
        for index, received in sorted(self._received_at.items()):
            silent = own_step - received
            if silent > self.max_staleness:
                if index not in self.dropped:
                    self._available[index].assign(0.0)
                    self.dropped.add(index)
                    self.peers_dropped += 1
                    logging.warning(
                        "Peer %s sent nothing new for %d steps (its newest snapshot: step %d, "
                        "received at step %d; this group: step %d; limit "
                        "--max_teacher_staleness=%d): weight 0 until it publishes again.",
                        self.peer_directories[index], silent, self.peer_steps[index],
                        received, own_step, self.max_staleness)
            elif index in self.dropped:
                self.dropped.discard(index)
                logging.warning("Peer %s is back with its step %d (this group: step %d).",
                                self.peer_directories[index], self.peer_steps[index],
                                own_step)

    def stats(self) -> dict:
        poller = self._poller.stats()
        return {"teacher_reloads": self.swaps,
                "teacher_staleness_steps": self.max_staleness_steps,
                "peer_bytes_read": poller["peer_bytes_read"],
                "reload_latency_s": poller["median_reload_latency_s"],
                "peer_steps": dict(self.peer_steps),
                "peers_dropped": self.peers_dropped,
                "teacher_dropped_steps": self.teacher_dropped_steps,
                "dropped_peers": sorted(self.dropped)}

    def close(self):
        self._poller.close()

    def _assign(self, index, snapshot):
        copy = self._copies[index]
        expected = [(n, v.shape) for n, v in zip(exchanged_names(copy), exchanged_variables(copy))]
        snapshots.check_compatible(snapshot, expected)
        for variable, value in zip(exchanged_variables(copy), snapshot.weights):
            variable.assign(value.astype(variable.dtype.as_numpy_dtype))
        self._available[index].assign(1.0)
        logging.info("Teacher %d now holds peer step %d (%s, read in %.2f s).",
                     index, snapshot.step, snapshot.precision, snapshot.read_seconds)


def agreed_on_all_workers(strategy: tf.distribute.Strategy, ready: dict[int, int],
                          num_peers: int) -> dict[int, int]:
    """The {peer: step} entries that every worker of a multi-worker group holds.

    Each worker polls on its own, so right after a peer publishes some workers
    may have its new snapshot and others not; those wait for the next reload.
    Every worker calls this at the same step, as a collective requires.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return ready
    local = np.full((1, num_peers), -1, np.int64)
    for index, step in ready.items():
        local[0, index] = step
    value = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(local))
    everyone = strategy.gather(value, axis=0).numpy()
    return {i: step for i, step in ready.items() if np.all(everyone[:, i] == step)}


class _ReloadCallback(StepCountingCallback):
    """Swaps fresh peer weights in between steps, every ``reload_interval`` steps."""

    def __init__(self, peers: CheckpointPeers):
        super().__init__()
        self._peers = peers

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._swap(self.step)

    def on_step_end(self, step):
        if step % self._peers.reload_interval == 0:
            self._swap(step)

    def _swap(self, step):
        strategy = self.model.distribute_strategy
        num_peers = len(self._peers.frozen_models)
        self._peers.swap_in_new_weights(
            step, agree=lambda ready: agreed_on_all_workers(strategy, ready, num_peers))


class BackgroundPublisher:
    """Publishes on a thread of its own, from a copy of the weights taken between steps.

    Training never waits for the write (seconds for the paper's LM), and the
    thread has no tf.distribute scope, so the publisher's staging variables are
    plain local variables: creating them under MultiWorkerMirroredStrategy would
    start a collective that only the chief joins. Only the newest pending copy
    is kept: a slow disk makes publishes rarer, never the queue longer.
    """

    def __init__(self, publisher: snapshots.PeerPublisher):
        self._publisher = publisher
        self._pending = None
        self._condition = threading.Condition()
        self._closed = False
        self.publish_seconds: list[float] = []
        self._thread = threading.Thread(target=self._run, name="PeerPublisher", daemon=True)
        self._thread.start()

    def submit(self, step: int, weights: list[tuple[str, np.ndarray]]) -> None:
        with self._condition:
            self._pending = (step, weights)
            self._condition.notify()

    def close(self) -> None:
        """Publishes what is pending, then stops the thread."""
        with self._condition:
            self._closed = True
            self._condition.notify()
        self._thread.join()

    def _run(self):
        while True:
            with self._condition:
                while self._pending is None and not self._closed:
                    self._condition.wait()
                if self._pending is None:
                    return
                (step, weights), self._pending = self._pending, None
            start = time.perf_counter()
            try:
                self._publisher.publish(step, weights)
            except Exception:  # pylint: disable=broad-except
                logging.exception("Publishing step %d failed; the next publish will retry.",
                                  step)
                continue
            self.publish_seconds.append(time.perf_counter() - start)


class PublishCallback(StepCountingCallback):
    """Hands the student's weights to the publisher every ``interval`` steps and at the end.

    Only the chief has a publisher; the other workers of a group pass None.
    """

    def __init__(self, publisher: BackgroundPublisher | None, student: keras.Model,
                 interval: int):
        super().__init__()
        self._publisher = publisher
        self._student = student
        self._interval = interval

    def on_step_end(self, step):
        if step % self._interval == 0:
            self.publish(step)

    def on_train_end(self, logs=None):
        if self.step % self._interval:
            self.publish(self.step)

    def publish(self, step):
        if self._publisher is not None:
            self._publisher.submit(step, named_weights(self._student))
