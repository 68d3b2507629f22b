"""One group of a codistillation job: its lease, teachers, checkpoints and exchange.

A ``Group`` is what the train command runs for each group, around a model it did
not build: your own model and ``model.fit`` get the same ``<model_dir>/group_<k>/``
layout (``config.layout``), the same lease (one live owner per group and worker),
resume from the last checkpoint, verified published snapshots, peers reloaded
under the same staleness limits, seeds and telemetry::

    with tc.Group(model_dir, group=0, num_groups=2, train_steps=300) as group:
        with group.strategy.scope():
            model = tc.CodistillModel(make_model(), group.teacher(make_model))
            model.compile(keras.optimizers.Adam(1e-3))
        group.fit(model, dataset)

Settings keep the train command's names, defaults and valid ranges (their
definitions live in ``tf_codistill.config``).
"""

from __future__ import annotations

import json
import math
import socket
import tempfile
import time
from typing import Callable, Optional

import tensorflow as tf
import tf_keras as keras
from absl import logging

from tf_codistill import config as config_lib
from tf_codistill.config.files import is_local
from tf_codistill.config.layout import GroupLayout
from tf_codistill.config.topology import peers_of
from tf_codistill.core import compat
from tf_codistill.core.carried_state import ReplicaCarriedState, reset_carried_state
from tf_codistill.core.noise_scale import NOISE_SCALE_LOGS
from tf_codistill.exchange import snapshots
from tf_codistill.exchange.peers import (BackgroundPublisher, CheckpointPeers, PublishCallback,
                                         build_teacher_copy, named_weights)
from tf_codistill.runner import callbacks as callbacks_lib
from tf_codistill.runner import evaluation
from tf_codistill.runner import teacher_sources
from tf_codistill.runner.workers import is_chief
from tf_codistill.utils import lease as lease_lib

PEER_POLL_INTERVAL_S = 0.5  # a manifest read; cheap next to a step of any real model

# What a Group takes as keywords, by the config section that defines each one.
TRAINER_SETTINGS = ("seed", "steps_per_loop", "keep_checkpoints", "steps_per_execution")
CODISTILL_SETTINGS = ("reload_interval", "reload_offset", "topology", "teacher_precision",
                      "max_teacher_staleness", "staleness_warning_s")


class Group:
    """Group ``group`` of ``num_groups``, living in ``<model_dir>/group_<group>/``.

    Use it as a context manager: entering takes the group's lease (a second live
    process for the same group and worker is refused with ``LeaseHeld``) and seeds
    Python, NumPy and TensorFlow with the group's seed; leaving stops the exchange
    threads and frees the lease.

    Args:
      model_dir: the directory every group of the job shares (local, NFS or a bucket).
      group: this group's index, 0 <= group < num_groups.
      num_groups: how many groups codistill.
      train_steps: optimizer steps to train this group to (across reruns).
      strategy: the group's tf.distribute strategy (default: the current one).
      **settings: the train command's settings of the same names:
        seed, steps_per_loop (steps between checkpoints and progress lines),
        keep_checkpoints, steps_per_execution, reload_interval, reload_offset,
        topology, teacher_precision, max_teacher_staleness, staleness_warning_s.
    """

    def __init__(self, model_dir: str, group: int, num_groups: int, *, train_steps: int,
                 strategy: Optional[tf.distribute.Strategy] = None, publish: bool = True,
                 **settings):
        self.model_dir = model_dir
        self.index = group
        self.num_groups = num_groups
        self.strategy = strategy or tf.distribute.get_strategy()
        self.trainer, self.codistill = _sections(train_steps, settings)
        _check(group, num_groups, self.trainer, self.codistill)
        self.layout = GroupLayout.of(model_dir, group)
        self.chief = is_chief(self.strategy)
        self.publishes = publish and num_groups > 1
        self.peers: Optional[CheckpointPeers] = None
        self._lease = None
        self._carried = None
        self._manager = None
        self._publisher = None
        self._summary_writer = None
        self.step_timer = callbacks_lib.StepTimer()
        self.allreduce_timer = None

    @classmethod
    def of_run(cls, config: config_lib.RunConfig, strategy: tf.distribute.Strategy) -> "Group":
        """The group a train command's config describes."""
        settings = {name: getattr(config.trainer, name) for name in TRAINER_SETTINGS}
        settings.update({name: getattr(config.codistill, name) for name in CODISTILL_SETTINGS})
        return cls(config.model_dir, config.group, config.num_groups,
                   train_steps=config.trainer.train_steps, strategy=strategy,
                   publish=teacher_sources.kind_of(config).publishes, **settings)

    @property
    def seed(self) -> int:
        """This group's seed (initialization and data order): groups start apart."""
        return config_lib.group_seed(self.trainer.seed, self.index)

    @property
    def worker(self) -> str:
        """"" for a one-process group; "<type>-<index>" for a worker of a multi-worker one."""
        if not isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return ""
        resolver = self.strategy.cluster_resolver
        return f"{getattr(resolver, 'task_type', None) or 'worker'}-" \
               f"{getattr(resolver, 'task_id', None) or 0}"

    @property
    def workers(self) -> int:
        """The processes of the group's strategy (1 unless multi-worker)."""
        resolver = getattr(self.strategy, "cluster_resolver", None)
        spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
        return max(1, len(spec.get("worker", [])) + len(spec.get("chief", [])))

    def __enter__(self) -> "Group":
        if not self.model_dir:
            raise config_lib.ConfigError("model_dir is empty; pass the directory every "
                                         "group of the job shares.")
        self._lease = self._acquire_lease()
        keras.utils.set_random_seed(self.seed)
        return self

    def __exit__(self, *exc_info):
        self.close()

    def teacher(self, build_model: Callable[[], keras.Model]) -> Optional[CheckpointPeers]:
        """The other groups' published snapshots as frozen teachers (``CheckpointPeers``),
        one copy per peer group built by ``build_model`` in the strategy's scope at the
        teacher precision; None when this group has no peers (it trains alone)."""
        groups = peers_of(self.index, self.num_groups, self.codistill.topology)
        if not groups:
            return None
        directories = [GroupLayout.of(self.model_dir, g).published for g in groups]
        precision = self.codistill.teacher_precision
        with self.strategy.scope():
            self.peers = CheckpointPeers(
                directories, lambda: build_teacher_copy(build_model, precision),
                reload_interval=self.codistill.reload_interval,
                reload_offset=self.codistill.reload_offset,
                poll_interval_s=PEER_POLL_INTERVAL_S,
                staleness_warning_s=self.codistill.staleness_warning_s,
                max_staleness=self.codistill.teacher_staleness_limit,
                final_step=self.trainer.train_steps)
        return self.peers

    def restore(self, model) -> int:
        """Restores the group's newest checkpoint into the compiled ``CodistillModel`` on
        every worker (weights, optimizer step and slots, carried state); returns its step,
        0 for a new group. Non-chief workers restore the chief's checkpoints and save their
        share of each collective save to a private directory."""
        self._carried = ReplicaCarriedState(model.student, self.strategy)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                                         carried_state=self._carried.variables)
        directory = (self.layout.checkpoints if self.chief
                     else tempfile.mkdtemp(prefix="tf_codistill_worker_"))
        self._manager = tf.train.CheckpointManager(
            checkpoint, directory, max_to_keep=self.trainer.keep_checkpoints or None)
        return restore_latest(checkpoint, self.layout.checkpoints, self.index, model.student,
                              self._carried)

    def publish_last_step_if_owed(self, model, step: int,
                                  build_restored: Callable[[], None] = lambda: None) -> None:
        """Publishes the restored last step if ``published/`` lacks it: a kill between the
        last checkpoint and the final publish. Without it the peers would never see the
        group's final weights, take it for dead and drop it past the staleness limit. Every
        worker reads the shared manifest, so all of them run ``build_restored`` (what
        creates a subclassed student's restored variables) together."""
        if not self.publishes:
            return
        published = snapshots.newest_published_step(self.layout.published)
        if published is not None and published >= step:
            return
        build_restored()
        if self.chief:
            print(f"group {self.index}: publishing step {step}, which the run that trained it "
                  f"did not (newest published: {published})", flush=True)
            self._peer_publisher().publish(step, named_weights(model.student))

    def _peer_publisher(self) -> snapshots.PeerPublisher:
        return snapshots.PeerPublisher(self.layout.published,
                                       precision=self.codistill.teacher_precision)

    def callbacks(self, model, units_per_step: int = 1, unit: str = "steps") -> list:
        """The Keras callbacks of one ``fit`` after ``restore``: stop at ``train_steps``,
        publish the student every ``reload_interval`` steps (the chief, in a background
        thread), checkpoint every ``steps_per_loop`` steps, one progress line per loop
        (``units_per_step`` of ``unit`` per step) with TensorBoard scalars, step times, and
        with a measured noise scale and several replicas, the all-reduce timed alone.
        The peers' reload callback comes with the model (``CodistillModel.fit``)."""
        if self._manager is None:
            raise RuntimeError("Call group.restore(model) before group.callbacks(model): "
                               "the callbacks checkpoint what restore resumed.")
        if self.chief and self.publishes and self._publisher is None:
            self._publisher = BackgroundPublisher(self._peer_publisher())
        if self.chief and self._summary_writer is None:
            self._summary_writer = tf.summary.create_file_writer(self.layout.codistill_logs)
        callbacks = [
            callbacks_lib.StopAtStep(self.trainer.train_steps),
            PublishCallback(self._publisher, model.student, self.codistill.reload_interval),
            callbacks_lib.CheckpointEveryLoop(self._manager, self._carried.gather),
            callbacks_lib.ProgressLogger(self.index, self.trainer.train_steps,
                                         units_per_step, unit, model.teacher,
                                         self._summary_writer),
            self.step_timer]
        if self.chief:
            callbacks.append(compat.keras_of(model).callbacks.TensorBoard(
                self.layout.logs, update_freq=self.steps_per_loop))
        if getattr(model, "noise_scale", None) and self.strategy.num_replicas_in_sync > 1:
            self.allreduce_timer = callbacks_lib.AllReduceTimer(self.strategy, model.noise_scale)
            callbacks.append(self.allreduce_timer)  # last: between loops, after their timing
        return callbacks

    @property
    def steps_per_loop(self) -> int:
        return min(self.trainer.steps_per_loop, self.trainer.train_steps)

    def fit(self, model, dataset, callbacks=(), **fit_kwargs) -> dict:
        """Resumes and trains the compiled ``CodistillModel`` to ``train_steps`` with
        ``model.fit``; returns the group's metrics, also written to metrics.json.

        ``dataset`` is an endless ``tf.data.Dataset`` of global batches, or a function
        of a ``tf.distribute.InputContext`` returning this pipeline's per-replica
        batches; a resumed group skips the batches of the steps it already trained.
        ``callbacks`` and ``fit_kwargs`` (``verbose``, ...) go on to ``model.fit``. A rerun
        of a finished group returns its saved metrics.
        """
        start = self.restore(model)
        total = self.trainer.train_steps
        if start >= total:
            self.publish_last_step_if_owed(model, start)
        finished = self.finished_metrics(start)
        if finished is not None:
            return finished
        began = time.perf_counter()
        history = model.fit(resumed_input(dataset, start, self.strategy),
                            epochs=math.ceil((total - start) / self.steps_per_loop),
                            steps_per_epoch=self.steps_per_loop,
                            callbacks=self.callbacks(model) + list(callbacks),
                            **{"verbose": 0, **fit_kwargs})
        self.close_exchange()
        metrics = self.metrics(model, {k: v[-1] for k, v in history.history.items()},
                               time.perf_counter() - began)
        if self.chief:
            config_lib.write_json(self.layout.metrics, metrics)
        return metrics

    def finished_metrics(self, start_step: int) -> Optional[dict]:
        """The saved metrics.json of a group already trained to ``train_steps`` (a rerun of
        a finished group), else None."""
        path = self.layout.metrics
        if start_step < self.trainer.train_steps or not tf.io.gfile.exists(path):
            return None
        print(f"group {self.index}: already finished at step {start_step}; metrics in {path}",
              flush=True)
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)

    def metrics(self, model, train_logs: dict, seconds: float) -> dict:
        """What metrics.json holds of the training: step, last losses, time and step times,
        the gradient noise scale, the replicas and workers and the all-reduce's share of a
        step, and the teacher's reloads, staleness, age and bytes read
        (``CheckpointPeers.stats``)."""
        metrics = {
            "group": self.index,
            "global_step": int(model.optimizer.iterations.numpy()),
            "train_loss": train_logs.get("task_loss"),
            "train_total_loss": train_logs.get("loss"),
            "distill_loss": train_logs.get("distill_loss"),
            "train_seconds": seconds,
            "step_time_median_s": None,
            "step_time_p95_s": None,
            "teacher_reloads": 0,
            "peers_dropped": 0,
            "teacher_dropped_steps": 0,
            "teacher_age_mean_steps": None,
            "teacher_age_max_steps": None,
            "peer_bytes_read": 0,
            "reload_latency_s": None,
            "peers": [],  # per peer: directory, step, bytes_read, snapshots_read, latency
        }
        metrics.update(self.step_timer.summary())
        metrics.update(noise_scale_metrics(model))
        metrics.update(replicas=self.strategy.num_replicas_in_sync, workers=self.workers,
                       allreduce_seconds_median=None, allreduce_share=None)
        if self.allreduce_timer is not None:
            metrics.update(self.allreduce_timer.summary(metrics["step_time_median_s"]))
        metrics.update(model.teacher.stats())
        return metrics

    def close_exchange(self) -> None:
        """Publishes what is pending and stops publishing (the peers keep their copies)."""
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None

    def close(self) -> None:
        """Stops the publisher and the peers' poller, closes the summary writer (one per
        group, however many ``callbacks``), and frees the lease."""
        self.close_exchange()
        if self._summary_writer is not None:
            self._summary_writer.close()
            self._summary_writer = None
        if self.peers is not None:
            self.peers.close()
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def _acquire_lease(self):
        """The group's (and worker's) lease; None on an object store, where no file can be
        created exclusively (one owner per group is then not enforced, which is said)."""
        path = self.layout.lease(self.worker)
        if not is_local(path):
            logging.warning("model_dir=%s is not a POSIX file system: one owner per group is "
                            "not enforced there (no lease); start each group once.",
                            self.model_dir)
            return None
        lease = lease_lib.Lease(path, f"group {self.index}" +
                                (f" {self.worker}" if self.worker else ""))
        try:
            lease.acquire()
        except OSError as error:
            raise not_writable(self.model_dir, error) from None
        return lease


def noise_scale_metrics(model) -> dict:
    """The gradient noise scale's averages at the end (None: off or not measured)."""
    values = ({name: float(value) for name, value in model.noise_scale.result().items()}
              if getattr(model, "noise_scale", None) is not None else {})
    return {name: values[name] if math.isfinite(values.get(name, math.nan)) else None
            for name in NOISE_SCALE_LOGS}


def _sections(train_steps, settings):
    """The trainer and codistillation sections holding ``settings``; an unknown name is a
    TypeError listing the known ones."""
    unknown = set(settings) - set(TRAINER_SETTINGS) - set(CODISTILL_SETTINGS)
    if unknown:
        raise TypeError(f"Group got unknown settings {sorted(unknown)}; it takes "
                        f"{sorted(TRAINER_SETTINGS + CODISTILL_SETTINGS)}.")
    trainer = config_lib.TrainerConfig(
        train_steps=train_steps,
        **{k: v for k, v in settings.items() if k in TRAINER_SETTINGS})
    codistill = config_lib.CodistillConfig(
        **{k: v for k, v in settings.items() if k in CODISTILL_SETTINGS})
    return trainer, codistill


def _check(group, num_groups, trainer, codistill):
    for section in (trainer, codistill):
        config_lib.check_section(section)
    try:
        peers_of(group, num_groups, codistill.topology)
    except ValueError as error:
        raise config_lib.ConfigError(str(error)) from None


def not_writable(model_dir, error) -> config_lib.ConfigError:
    detail = getattr(error, "message", None) or str(error)
    return config_lib.ConfigError(
        f"--model_dir={model_dir} is not writable from {socket.gethostname()} "
        f"({type(error).__name__}: {detail}); every group's chief writes there, so "
        "pass a directory every process can write: a shared file system or a bucket "
        "(gs://...).")


def resumed_input(dataset, start_step: int, strategy: tf.distribute.Strategy):
    """The training input with the batches of the first ``start_step`` steps skipped: a
    resumed group reads on where it stopped (the same batches as an uninterrupted run
    where the order is seeded). ``dataset`` is a ``tf.data.Dataset`` of global batches
    (one per step), or a function of an InputContext giving per-replica batches (each
    step takes one element per local replica), which is distributed here."""
    if isinstance(dataset, tf.data.Dataset):
        return dataset.skip(start_step) if start_step else dataset

    def dataset_fn(context):
        per_replica = dataset(context)
        if not start_step:
            return per_replica
        local_replicas = context.num_replicas_in_sync // context.num_input_pipelines
        return per_replica.skip(start_step * local_replicas)
    return strategy.distribute_datasets_from_function(dataset_fn)


def restore_latest(checkpoint, directory: str, group: int, student, carried) -> int:
    """Restores the newest checkpoint in ``directory`` on every worker; returns its step.

    The carried LM state resumes with it (saved whole, given back per replica). A
    checkpoint written before it held every replica's state keeps the state it has with
    one replica (the first replica's is all there is) and restarts it from zero with
    several.
    """
    latest = tf.train.latest_checkpoint(directory)
    if latest is None:
        logging.info("Group %d starts from scratch in %s.", group, directory)
        return 0
    whole = check_same_replicas(latest, group, carried)
    evaluation.restore_checkpoint(checkpoint, latest, student,
                                  "The model_dir holds a run of a different model; pass a new "
                                  "--model_dir.", keep_carried_state=True)
    if whole:
        carried.scatter()
    elif len(carried.variables) and carried.variables[0].shape[0] > 1:
        reset_carried_state(student)
    step = int(checkpoint.optimizer.iterations.numpy())
    print(f"group {group}: resuming from step {step} ({latest})", flush=True)
    return step


def check_same_replicas(path: str, group: int, carried) -> bool:
    """A model that carries state splits its streams, and their state, per replica: a
    resume with another number of replicas would give each replica other streams' state
    (and read other streams), so it is refused, naming both counts. Returns whether the
    checkpoint holds every replica's state."""
    if not carried.variables:
        return False
    shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    saved = next((shape for name, shape in shapes.items()
                  if name.startswith("carried_state/0/")), None)
    mine = carried.variables[0].shape.as_list()
    if saved is not None and list(saved) != mine:
        raise config_lib.ConfigError(
            f"group {group}: {path} was trained on {saved[0]} replica(s) of "
            f"{saved[1]} streams each, this run has {mine[0]} of {mine[1]}. A stateful "
            f"model's streams and carried state are split per replica: resume with "
            f"{saved[0]} replica(s) (the --strategy and devices of that run), or pass a new "
            "--model_dir.")
    return saved is not None
