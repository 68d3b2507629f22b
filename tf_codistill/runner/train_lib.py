"""Runs one group of a codistillation job: build in scope, restore, fit, evaluate, export.

Estimator-style: everything a group makes lives in ``<model_dir>/group_<k>/``
(config.json, checkpoints/, published/, logs/, metrics.json, export/), and
running the same command again resumes from the last checkpoint.
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import shutil
import socket
import tempfile
import time

import tensorflow as tf
import tf_keras as keras
from absl import logging

from tf_codistill import config as config_lib
from tf_codistill import tasks
from tf_codistill.config import layout
from tf_codistill.config.files import is_local, unique_temporary
from tf_codistill.core.carried_state import ReplicaCarriedState, reset_carried_state
from tf_codistill.core.model import CodistillModel
from tf_codistill.core.schedules import weight_decay_schedule
from tf_codistill.exchange import snapshots
from tf_codistill.exchange.peers import BackgroundPublisher, PublishCallback, named_weights
from tf_codistill.runner import callbacks as callbacks_lib
from tf_codistill.runner import evaluation
from tf_codistill.runner import teacher_sources
from tf_codistill.runner import workers
from tf_codistill.runner.optimizers import make_optimizer
from tf_codistill.runner.strategies import get_strategy
from tf_codistill.utils import lease as lease_lib


def run(config: config_lib.RunConfig) -> dict:
    """Trains group ``config.group`` to ``train_steps``; returns its metrics.json.

    The process holds the group's lease (``utils.lease``) throughout: a second
    live process for the same group and worker is refused (LeaseHeld, exit 2),
    and one whose holder died takes over. A rerun after a kill at any point
    resumes: metrics.json is written last, so a group without it retrains from
    its last checkpoint (none: from scratch) and exports and evaluates again.
    """
    config = tasks.resolve(config)
    config_lib.check(config)
    config = config_lib.aligned_to_executions(config)
    task = tasks.get_task(config)
    task.check_inputs()
    try:
        strategy = get_strategy(config.strategy, config.tpu)
    except ValueError as error:  # TF_CONFIG that does not parse
        raise config_lib.ConfigError(str(error)) from None
    _check_fits_strategy(config, strategy)  # bad input is refused before anything is written
    with _group_lease(config):
        try:
            return _run(config, task, strategy)
        except workers.WORKER_FAILURES as error:
            if config.strategy != "multi_worker":
                raise
            raise workers.WorkerLostError(workers.worker_lost_message(config, error)) from None


@contextlib.contextmanager
def _group_lease(config):
    """Holds the group's (and worker's) lease; on an object store, where no file can be
    created exclusively, says that one owner per group is not enforced there."""
    worker = workers.worker_name(config)
    path = config.layout.lease(worker)
    if not is_local(path):
        logging.warning("--model_dir=%s is not a POSIX file system: one owner per group is "
                        "not enforced there (no lease); start each group once.",
                        config.model_dir)
        yield
        return
    try:
        lease = lease_lib.Lease(path, f"group {config.group}" + (f" {worker}" if worker else ""))
        lease.acquire()
    except OSError as error:
        raise _not_writable(config, error) from None
    try:
        yield
    finally:
        lease.release()


def _run(config: config_lib.RunConfig, task, strategy) -> dict:
    chief = workers.is_chief(strategy)
    if chief:
        _write_config(config)
    workers.check_model_dir_shared(config, strategy)
    # Global seeds for whatever a model draws without its own seed (dropout, unseeded
    # initializers); the tasks seed their initializers and data order themselves.
    keras.utils.set_random_seed(config.init_seed)
    model, teacher = build(config, task, strategy)
    try:
        carried = ReplicaCarriedState(model.student, strategy)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                                         carried_state=carried.variables)
        manager = tf.train.CheckpointManager(
            checkpoint, workers.writable_dir(config.layout.checkpoints, chief),
            max_to_keep=config.trainer.keep_checkpoints or None)
        start_step = _restore(checkpoint, config, model.student, carried)
        if start_step >= config.trainer.train_steps:
            _publish_last_step_if_owed(config, task, strategy, model, chief, start_step)
        finished = _finished_metrics(config, start_step)
        if finished is not None:
            return finished
        train_logs, seconds = _train(config, task, strategy, model, manager, chief, start_step,
                                     carried)
        if start_step >= config.trainer.train_steps:
            _build_restored(task, strategy, model)
        _export(config, task.serving_model(model.student), chief)
        eval_logs = _evaluate(config, task, strategy, model)
        agreement = evaluation.teacher_agreement(task, strategy, model.student, model.teacher,
                                                 config.trainer.eval_steps or None,
                                                 rows=model.distill_rows)
    finally:
        teacher.close()
    metrics = _metrics(config, model, train_logs, eval_logs, seconds)
    metrics["input"] = task.input_stats()
    metrics.update(agreement)
    if chief:
        config_lib.write_json(config.layout.metrics, metrics)
    return metrics


def build(config, task, strategy):
    """The compiled CodistillModel, built in the strategy's scope, and its teacher source
    (``runner.teacher_sources``: what --teacher names), which the caller closes."""
    config = tasks.resolve(config)
    per_replica_batch = _per_replica_batch(config, strategy)
    distill_rows = config.codistill.distill_rows(per_replica_batch)
    teacher_batch = distill_rows or per_replica_batch
    with strategy.scope(), _global_policy(config.trainer.mixed_precision):
        student = task.build_model(per_replica_batch)
        teacher = teacher_sources.build(config, task, teacher_batch)
        model = CodistillModel(
            student, teacher, output_kind=task.output_kind,
            distill_loss=config.codistill.distill_loss,
            distill_weight=config.codistill.distill_weight,
            temperature=config.codistill.temperature,
            burn_in_steps=config.codistill.burn_in_steps, distill_rows=distill_rows,
            regularization_schedule=weight_decay_schedule(
                config.trainer.weight_decay_schedule, config.trainer.lr_decay_boundaries))
        optimizer = make_optimizer(config.trainer, task.learning_rate())
        if config.trainer.mixed_precision == "mixed_float16":
            optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
        model.compile(optimizer, loss=task.loss(), metrics=task.metrics(),
                      jit_compile=config.trainer.jit_compile,
                      steps_per_execution=config.trainer.steps_per_execution)
    return model, model.teacher


def _write_config(config):
    """The chief's first write: a model_dir it cannot write is bad input, not a crash."""
    try:
        config_lib.write_or_check(config)
    except tf.errors.OpError as error:
        raise _not_writable(config, error) from None


def _not_writable(config, error) -> config_lib.ConfigError:
    detail = getattr(error, "message", None) or str(error)
    return config_lib.ConfigError(
        f"--model_dir={config.model_dir} is not writable from {socket.gethostname()} "
        f"({type(error).__name__}: {detail}); every group's chief writes there, so "
        "pass a directory every process can write: a shared file system or a bucket "
        "(gs://...).")


@contextlib.contextmanager
def _global_policy(name):
    """Keras' global precision policy while the group's models are built, then the old one."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _finished_metrics(config, start_step):
    """The saved metrics of a group that already trained all its steps, else None."""
    path = config.layout.metrics
    if start_step < config.trainer.train_steps or not tf.io.gfile.exists(path):
        return None
    print(f"group {config.group}: already finished at step {start_step}; metrics in {path}",
          flush=True)
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def _check_fits_strategy(config, strategy):
    """Flags that only the strategy can judge, checked before anything is written."""
    if not config.trainer.eval_steps and isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy):
        raise config_lib.ConfigError(
            "--eval_steps=0 (the whole eval set) needs a length all workers of a "
            "multi_worker group agree on; pass --eval_steps=N.")
    replicas = strategy.num_replicas_in_sync
    if config.trainer.batch_size % replicas:
        raise config_lib.ConfigError(
            f"--batch_size={config.trainer.batch_size} does not split evenly over "
            f"{replicas} replicas; pass a multiple of {replicas}.")
    config.codistill.distill_rows(_per_replica_batch(config, strategy))
    devices = (strategy.extended.worker_devices
               if isinstance(strategy, tf.distribute.MirroredStrategy) else ())
    if config.trainer.jit_compile and len(devices) > 1 and all("CPU" in d for d in devices):
        raise config_lib.ConfigError(
            f"--jit_compile with {len(devices)} CPU devices in one process: TensorFlow's XLA "
            "step cannot read the variables of the other devices' replicas (\"Trying to "
            "access resource ... located in device CPU:1 from device CPU:0\"); drop "
            "--jit_compile, or train on one device (--strategy=default).")


def _per_replica_batch(config, strategy):
    return config.trainer.batch_size // strategy.num_replicas_in_sync


def _steps_per_loop(config):
    return min(config.trainer.steps_per_loop, config.trainer.train_steps)


def _restore(checkpoint, config, student, carried):
    """Restores the group's newest checkpoint on every worker; returns its step.

    Non-chief workers save to private directories but restore from the chief's,
    so a resumed multi-worker group starts from one state. The training input
    resumes where the checkpoint left it (``_resumed_input``), and so does every
    replica's carried LM state (``carried``: saved whole, given back per replica).
    A checkpoint written before it held every replica's state keeps the state it
    has with one replica (the first replica's is all there is) and restarts it from
    zero with several.
    """
    latest = tf.train.latest_checkpoint(config.layout.checkpoints)
    if latest is None:
        logging.info("Group %d starts from scratch in %s.", config.group, config.group_dir)
        return 0
    whole = check_same_replicas(latest, config, carried)
    evaluation.restore_checkpoint(checkpoint, latest, student,
                                  "The model_dir holds a run of a different model; pass a new "
                                  "--model_dir.", keep_carried_state=True)
    if whole:
        carried.scatter()
    elif len(carried.variables) and carried.variables[0].shape[0] > 1:
        reset_carried_state(student)
    step = int(checkpoint.optimizer.iterations.numpy())
    print(f"group {config.group}: resuming from step {step} ({latest})", flush=True)
    return step


def check_same_replicas(path, config, carried):
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
            f"group {config.group}: {path} was trained on {saved[0]} replica(s) of "
            f"{saved[1]} streams each, this run has {mine[0]} of {mine[1]}. A stateful "
            f"model's streams and carried state are split per replica: resume with "
            f"{saved[0]} replica(s) (the --strategy and devices of that run), or pass a new "
            "--model_dir.")
    return saved is not None


def _resumed_input(task, start_step):
    """The task's training input with the batches of the first ``start_step`` steps
    skipped: a resumed group reads on where it stopped. Where the order is fixed by the
    seed (LM, Criteo, clusters) these are the same batches, token for token, as an
    uninterrupted run; ImageNet's crops and flips are not seeded, so only its position
    is. Each step takes one element per local replica from each input pipeline. The
    skipped elements are produced and dropped (the LM re-reads and re-tokenizes its
    documents up to there, ImageNet decodes its images): the cost of a recorded skip."""
    def dataset_fn(context):
        dataset = task.train_dataset(context)
        if not start_step:
            return dataset
        local_replicas = context.num_replicas_in_sync // context.num_input_pipelines
        return dataset.skip(start_step * local_replicas)
    return dataset_fn


def _train(config, task, strategy, model, manager, chief, start_step, carried):
    total = config.trainer.train_steps
    steps_per_loop = _steps_per_loop(config)
    if start_step >= total:  # killed after its last checkpoint, before metrics.json
        return {}, 0.0
    config_lib.check_resumes_between_executions(config, start_step)
    dataset = strategy.distribute_datasets_from_function(_resumed_input(task, start_step))
    publisher = None
    if chief and _publishes(config):
        publisher = BackgroundPublisher(_peer_publisher(config))
    step_timer = callbacks_lib.StepTimer()
    writer = (tf.summary.create_file_writer(config.layout.codistill_logs)
              if chief else None)
    progress = callbacks_lib.ProgressLogger(
        config.group, total, task.units_per_row * config.trainer.batch_size, task.throughput_unit,
        model.teacher, writer)
    callbacks = [callbacks_lib.StopAtStep(total),
                 PublishCallback(publisher, model.student, config.codistill.reload_interval),
                 callbacks_lib.CheckpointEveryLoop(manager, carried.gather), progress, step_timer]
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(
            config.layout.logs, update_freq=steps_per_loop))
    start = time.perf_counter()
    try:
        history = model.fit(dataset, epochs=math.ceil((total - start_step) / steps_per_loop),
                            steps_per_epoch=steps_per_loop, callbacks=callbacks, verbose=0)
    finally:
        if publisher is not None:
            publisher.close()
    logs = {k: v[-1] for k, v in history.history.items()}
    logs.update(step_timer.summary())
    return logs, time.perf_counter() - start


def _publishes(config) -> bool:
    """Whether the group publishes its weights for peer groups to read."""
    return config.num_groups > 1 and teacher_sources.kind_of(config).publishes


def _peer_publisher(config) -> snapshots.PeerPublisher:
    return snapshots.PeerPublisher(config.layout.published,
                                   precision=config.codistill.teacher_precision)


def _publish_last_step_if_owed(config, task, strategy, model, chief, step):
    """Publishes the restored last step if ``published/`` lacks it: a kill between the last
    checkpoint and the final publish. Without it the peers would never see the group's
    final weights, take it for dead and drop it past --max_teacher_staleness. Every worker
    reads the shared manifest, so all of them build the restored student together."""
    if not _publishes(config):
        return
    published = snapshots.newest_published_step(config.layout.published)
    if published is not None and published >= step:
        return
    _build_restored(task, strategy, model)
    if chief:
        print(f"group {config.group}: publishing step {step}, which the run that trained it "
              f"did not (newest published: {published})", flush=True)
        _peer_publisher(config).publish(step, named_weights(model.student))


def _evaluate(config, task, strategy, model):
    reset_carried_state(model.student)
    dataset = strategy.distribute_datasets_from_function(task.eval_dataset)
    steps = config.trainer.eval_steps or None
    logs = model.evaluate(dataset, steps=steps, verbose=0, return_dict=True)
    return task.summarize_eval(logs)


def _metrics(config, model, train_logs, eval_logs, seconds):
    metrics = {
        "group": config.group,
        "global_step": int(model.optimizer.iterations.numpy()),
        "train_loss": train_logs.get("task_loss"),
        "train_total_loss": train_logs.get("loss"),
        "distill_loss": train_logs.get("distill_loss"),
        "eval_loss": eval_logs.get("loss"),
        "train_seconds": seconds,
        "step_time_median_s": train_logs.get("step_time_median_s"),
        "step_time_p95_s": train_logs.get("step_time_p95_s"),
        "teacher_reloads": 0,
        "teacher_staleness_steps": 0,
        "peers_dropped": 0,
        "teacher_dropped_steps": 0,
        "teacher_age_mean_steps": None,
        "teacher_age_max_steps": None,
        "peer_bytes_read": 0,
        "reload_latency_s": None,
        "peers": [],  # per peer: directory, step, bytes_read, snapshots_read, reload_latency_s
    }
    metrics.update(model.teacher.stats())
    metrics.update({f"eval_{k}": v for k, v in eval_logs.items() if k != "loss"})
    return metrics


def _build_restored(task, strategy, model):
    """Builds a student restored after its last step (a rerun after a kill during export
    or evaluation): a subclassed model learns its input shape, and creates the variables
    the restore is waiting for, on its first call. One evaluation batch does it on
    every replica; the evaluation that follows resets the carried state."""
    if model.student.built:
        return
    dataset = strategy.distribute_datasets_from_function(task.eval_dataset)
    model.evaluate(dataset, steps=1, verbose=0)


def _export(config, model, chief):
    """Saves the served model (the task's ``serving_model`` of the student) to export/
    whole: into a unique temporary directory, then renamed.

    A kill mid-save leaves export/ as it was (absent or complete) and a temporary
    directory that the next run of this group (the lease holder) removes. Object
    stores cannot rename a directory: there the export is written in place (a rerun
    after a kill writes it again, since metrics.json comes last).
    """
    if not chief:
        model.save(tempfile.mkdtemp(prefix="tf_codistill_export_"))
        return
    path = config.layout.export
    if not is_local(path):
        if tf.io.gfile.exists(path):
            tf.io.gfile.rmtree(path)
        model.save(path)
        return
    for leftover in glob.glob(f"{path}.tmp-*") + glob.glob(f"{path}.old-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = unique_temporary(path)
    model.save(tmp)
    old = None
    if os.path.exists(path):
        old = f"{path}.old-{os.path.basename(tmp).rsplit('tmp-', 1)[1]}"
        os.rename(path, old)
    os.rename(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
