"""Teachers from other groups: frozen copies reloaded from the peers' published weights.

Each group publishes its student's weights (``PublishCallback``); every other
group polls them in a background thread (``snapshots.PeerPoller``) and, every
``reload_interval`` steps, swaps the freshest verified snapshot into a frozen
teacher copy between two steps (``CheckpointPeers``). A peer that has published
nothing yet contributes nothing: its 0/1 weight in the teacher mean stays 0. A
peer that published nothing for more than ``max_staleness`` of the student's
steps (it died, stalled, or is restarting) gets weight 0 again until it
publishes again: a dead peer stops pulling its partners toward its old model.
A peer that publishes is alive, whatever step it publishes: one restarted from
an older checkpoint republishes steps its copy here already passed, and stays
a teacher with the newest weights it sent until it publishes past them.

Peers publish at multiples of ``reload_interval`` and reload ``reload_offset``
steps later, so the snapshot of the multiple has had time to arrive (one that
has not is looked for after every step until it has): a teacher is then
``reload_offset`` to ``reload_offset + reload_interval - 1`` steps old when the
groups keep pace (publishing and reloading at the same multiples made it one
interval older, since a peer's newest copy was rarely on disk yet). The age
every trained step really saw is counted (``stats``), not assumed.
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
from tf_codistill.core import compat
from tf_codistill.core.carried_state import carried_state_variables
from tf_codistill.core.step_counting import StepCountingCallback
from tf_codistill.core.teachers import TeacherSource
from tf_codistill.utils.collectives import gather_ints


def exchanged_variables(model: keras.Model) -> list[tf.Variable]:
    """The variables a peer needs: all weights but per-stream carried state."""
    carried = {id(v) for v in carried_state_variables(model)}
    return [v for v in model.weights if id(v) not in carried]


def exchanged_names(model: keras.Model) -> list[str]:
    """Position-based names, identical for every copy of one architecture.

    Keras variable names carry per-process layer counters ("dense_3"), so peers
    are matched by position and shape; the short name keeps errors readable.
    """
    return [f"{index:03d}/{variable.name.split('/')[-1].split(':')[0]}"
            for index, variable in enumerate(exchanged_variables(model))]


# A frozen copy never trains, so a 16-bit copy keeps its variables in 16 bits too
# ("bfloat16", not "mixed_bfloat16"): a mixed copy casts every variable it reads,
# inside the RNN loop once per time step, which made bf16 teachers slower than
# float32 ones (benchmarks/teacher_forward.py). int8 is storage and transfer only:
# an int8 teacher computes in bfloat16. float16 stays mixed (float32 variables),
# as float16 compute is for GPUs.
TEACHER_COMPUTE_POLICY = {"float32": "float32", "bfloat16": "bfloat16",
                          "float16": "mixed_float16", "int8": "bfloat16"}


def build_teacher_copy(build_model: Callable[[], keras.Model], precision: str) -> keras.Model:
    """Builds a frozen copy whose forward pass runs at the teacher precision.

    bfloat16 and int8 copies hold bfloat16 variables and compute in bfloat16; the
    published weights are assigned converted. Outputs are cast to float32 by the
    train step before the distillation loss.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(TEACHER_COMPUTE_POLICY[precision])
    try:
        copy = build_model()
    finally:
        keras.mixed_precision.set_global_policy(previous)
    if precision != "float32" and compat.is_keras3_model(copy):
        raise ValueError(f"teacher_precision={precision!r} builds tf_keras teacher copies; "
                         "a Keras 3 model's peers are float32: pass "
                         "teacher_precision='float32', or build the model with tf_keras.")
    return copy


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
      max_staleness: a peer that published nothing for more than this many of
        this student's steps gets weight 0 until it publishes again (checked at
        every reload, and after every step while a peer's copy is late); None
        never drops a peer. A peer that keeps publishing stays a teacher however
        far behind it trains: slower, or restarted from an older checkpoint (its
        copy keeps the newest weights it sent until it publishes past them); at
        the clusters task such a peer still helps (benchmarks/fault_soak.py).
      reload_offset: reload at steps ``reload_offset`` past each multiple of
        ``reload_interval`` (taken modulo the interval).
      final_step: the peers' last training step; a peer whose snapshot is from it has
        finished, not died, and is never dropped (its final weights stay the best it has).
      poller: what reads the peers' snapshots (``snapshots.PeerPoller`` of
        ``peer_directories``); None makes one polling every ``poll_interval_s``.
    """

    def __init__(self, peer_directories: Sequence[str], build_model: Callable[[], keras.Model],
                 reload_interval: int = 50, poll_interval_s: float = 5.0,
                 staleness_warning_s: float = 600.0, max_staleness: int | None = None,
                 reload_offset: int = 0, final_step: int | None = None,
                 poller: snapshots.PeerPoller | None = None):
        if reload_interval < 1:
            raise ValueError(f"reload_interval must be >= 1, got {reload_interval}.")
        if reload_offset < 0:
            raise ValueError(f"reload_offset must be >= 0, got {reload_offset}.")
        self.peer_directories = list(peer_directories)
        self.reload_interval = reload_interval
        self.reload_offset = reload_offset % reload_interval
        self._copies = [build_model() for _ in self.peer_directories]
        for copy in self._copies:
            copy.trainable = False
        self._available = [tf.Variable(0.0, trainable=False, name=f"peer{i}_available")
                           for i in range(len(self._copies))]
        self._poller = poller or snapshots.PeerPoller(self.peer_directories, poll_interval_s,
                                                      staleness_warning_s)
        self._pending: dict[int, snapshots.PeerSnapshot] = {}
        self.peer_steps: dict[int, int] = {}
        self.swaps = 0
        self.max_staleness = max_staleness
        self.final_step = final_step
        self.dropped: set[int] = set()  # peers at weight 0 for staleness, now
        self.peers_dropped = 0  # times a peer was dropped
        self.teacher_dropped_steps = 0  # student steps x peers spent dropped
        self._checked_step = None
        self._age_sum = 0
        self._age_count = 0
        self._age_max = None
        self._age_min = None
        self._received_at: dict[int, int] = {}  # the student's step at each peer's last publish
        self._publishes: dict[int, int] = {}  # each peer's newest publish, agreed

    has_frozen_teachers = True

    @property
    def poller(self) -> snapshots.PeerPoller:
        """The poller whose new snapshots ``swap_in_new_weights`` takes."""
        return self._poller

    @property
    def frozen_models(self):
        return tuple(self._copies)

    def frozen_predictions(self, x):
        return [(tf.stop_gradient(copy(x, training=False)), available)
                for copy, available in zip(self._copies, self._available)]

    def ready(self):
        """True once any peer's weights are in its copy: before, no teacher forward runs."""
        if not self._available:
            return False
        return tf.reduce_max(tf.stack([tf.convert_to_tensor(a) for a in self._available])) > 0

    def callbacks(self):
        return [_ReloadCallback(self)]

    def is_reload_step(self, step: int) -> bool:
        return (step - self.reload_offset) % self.reload_interval == 0

    def behind(self, step: int) -> bool:
        """Whether some peer's copy is older than the multiple of ``reload_interval`` that
        the reload window of ``step`` is for (not arrived yet, or the peer is behind)."""
        expected = (step - self.reload_offset) // self.reload_interval * self.reload_interval
        return any(self.peer_steps.get(i, -1) < expected for i in range(len(self._copies)))

    def count_teacher_age(self, trained_step: int) -> None:
        """Counts the age of each loaded peer in the step that just made ``trained_step``.

        That step started from the student after ``trained_step - 1`` updates, so a
        teacher holding the peer's step p was ``trained_step - 1 - p`` steps old; negative
        when the peer is ahead (a group that started late loads a copy from its future).
        """
        for index, peer_step in self.peer_steps.items():
            if index in self.dropped:  # at weight 0: not a teacher of this step
                continue
            age = trained_step - 1 - peer_step
            self._age_sum += age
            self._age_count += 1
            self._age_max = age if self._age_max is None else max(self._age_max, age)
            self._age_min = age if self._age_min is None else min(self._age_min, age)

    def swap_in_new_weights(self, own_step: int, agree=None) -> int:
        """Assigns every newer peer snapshot to its copy; returns how many.

        A copy is built by its first forward pass; snapshots that arrive before
        that wait for the next swap. ``agree`` maps {peer: step} to the subset
        every worker of the group holds (see ``agreed_on_all_workers``), so the
        workers of one synchronous group never train against different teachers.
        """
        self._pending.update(self._poller.take_new())
        ready = {i: s.step for i, s in self._pending.items() if self._copies[i].built}
        publishes = self._poller.publishes()
        if agree is not None:
            ready, publishes = agree(ready), agree(publishes)
        for index in sorted(ready):
            snapshot = self._pending.pop(index)
            self._assign(index, snapshot)
            self.peer_steps[index] = snapshot.step
            self._received_at[index] = own_step
            self.swaps += 1
        self._note_publishes(publishes, own_step)
        self._drop_stale_peers(own_step)
        return len(ready)

    def _note_publishes(self, publishes: dict[int, int], own_step: int) -> None:
        """Restarts the silence of every loaded peer that published since the last look,
        also a step at or below its copy's (its copy stays: it holds newer weights)."""
        for index, publish in publishes.items():
            if self._publishes.get(index) != publish:
                self._publishes[index] = publish
                if index in self._received_at:
                    self._received_at[index] = own_step

    def _drop_stale_peers(self, own_step: int) -> None:
        """Weight 0 for peers silent too long; their next publish brings them back.

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
            finished = self.final_step is not None and self.peer_steps[index] >= self.final_step
            if silent > self.max_staleness and not finished:
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
                self._available[index].assign(1.0)
                logging.warning("Peer %s is publishing again; its copy holds its step %d "
                                "(this group: step %d).", self.peer_directories[index],
                                self.peer_steps[index], own_step)

    def stats(self) -> dict:
        """Reloads, the teacher's age (how many steps each distilling step's copies were behind
        this student: mean, max, min over the steps after burn-in), each peer's step held and
        bytes read, drops."""
        poller = self._poller.stats()
        return {"teacher_reloads": self.swaps,
                "teacher_age_mean_steps": (self._age_sum / self._age_count
                                           if self._age_count else None),
                "teacher_age_max_steps": self._age_max,
                "teacher_age_min_steps": self._age_min,
                "teacher_age_counted_steps": self._age_count,
                "reload_interval": self.reload_interval,
                "reload_offset": self.reload_offset,
                "peer_bytes_read": poller["peer_bytes_read"],
                "reload_latency_s": poller["median_reload_latency_s"],
                "peer_steps": dict(self.peer_steps),
                "peers": [{"directory": directory, "step": self.peer_steps.get(i),
                           "bytes_read": poller["by_peer"][i]["peer_bytes_read"],
                           "snapshots_read": poller["by_peer"][i]["snapshots_read"],
                           "reload_latency_s": poller["by_peer"][i]["median_reload_latency_s"]}
                          for i, directory in enumerate(self.peer_directories)],
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
            variable.assign(value.astype(tf.as_dtype(variable.dtype).as_numpy_dtype))
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
    local = [ready.get(index, -1) for index in range(num_peers)]
    everyone = gather_ints(strategy, local)
    return {i: step for i, step in ready.items() if np.all(everyone[:, i] == step)}


class _ReloadCallback(StepCountingCallback):
    """Swaps fresh peer weights in between steps, ``reload_offset`` steps after every
    multiple of ``reload_interval``; a peer whose copy of that multiple has not arrived yet
    is looked for again after every step until it has (or the next reload). Counts the
    teacher's age in the steps where the distillation term is on (after burn-in)."""

    def __init__(self, peers: CheckpointPeers):
        super().__init__()
        self._peers = peers
        self._waiting = False

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._swap(self.step)

    def on_step_end(self, step):
        if step - 1 >= getattr(self.model, "burn_in_steps", 0):
            self._peers.count_teacher_age(step)
        if self._peers.is_reload_step(step) or self._waiting:
            self._swap(step)
            # The same on every worker of a group: the swap agreed on what each holds.
            self._waiting = step >= self._peers.reload_interval and self._peers.behind(step)

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
