"""Runs one group of a codistillation job: build in scope, restore, fit, evaluate, export.

Estimator-style: everything a group makes lives in ``<model_dir>/group_<k>/``
(config.json, checkpoints/, published/, logs/, metrics.json, export/), and
running the same command again resumes from the last checkpoint.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import shutil
import tempfile
import time

import tensorflow as tf
import tf_keras as keras

from tf_codistill import config as config_lib
from tf_codistill import tasks
from tf_codistill.config.files import is_local, unique_temporary
from tf_codistill.core.carried_state import reset_carried_state
from tf_codistill.core.model import CodistillModel
from tf_codistill.core.noise_scale import AVERAGING_STEPS, WARMUP_STEPS
from tf_codistill.core.schedules import weight_decay_schedule
from tf_codistill.runner import evaluation
from tf_codistill.runner import scaling
from tf_codistill.runner import teacher_sources
from tf_codistill.runner import workers
from tf_codistill.runner.group import Group, not_writable, resumed_input
from tf_codistill.runner.optimizers import make_optimizer
from tf_codistill.runner.strategies import get_strategy


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
    check_fits_strategy(config, strategy)  # bad input is refused before anything is written
    # The group's lease and seeds (Python, NumPy, TensorFlow) for whatever a model draws
    # without its own seed; the tasks seed their initializers and data order themselves.
    with Group.of_run(config, strategy) as group:
        try:
            return _run(config, task, strategy, group)
        except workers.WORKER_FAILURES as error:
            if config.strategy != "multi_worker":
                raise
            raise workers.WorkerLostError(workers.worker_lost_message(config, error)) from None


def _run(config: config_lib.RunConfig, task, strategy, group: Group) -> dict:
    if group.chief:
        _write_config(config)
    workers.check_model_dir_shared(config, strategy)
    model, _ = build(config, task, strategy, group)
    start_step = group.restore(model)
    if start_step >= config.trainer.train_steps:
        group.publish_last_step_if_owed(model, start_step,
                                        lambda: _build_restored(task, strategy, model))
    finished = group.finished_metrics(start_step)
    if finished is not None:
        return finished
    train_logs, seconds = _train(config, task, strategy, model, group, start_step)
    if start_step >= config.trainer.train_steps:
        _build_restored(task, strategy, model)
    _export(config, task.serving_model(model.student), group.chief)
    eval_logs = _evaluate(config, task, strategy, model)
    agreement = evaluation.teacher_agreement(task, strategy, model.student, model.teacher,
                                             config.trainer.eval_steps or None,
                                             rows=model.distill_rows)
    metrics = _metrics(group, model, train_logs, eval_logs, seconds)
    metrics["input"] = task.input_stats()
    metrics.update(agreement)
    metrics.update(_scaling_metrics(config, task, metrics))
    if group.chief:
        config_lib.write_json(config.layout.metrics, metrics)
    return metrics


def build(config, task, strategy, group: Group | None = None):
    """The compiled CodistillModel, built in the strategy's scope, and its teacher source
    (``runner.teacher_sources``: what --teacher names; the peers come from ``group``,
    by default the one ``config`` describes, which closes them)."""
    config = tasks.resolve(config)
    per_replica_batch = _per_replica_batch(config, strategy)
    distill_rows = config.codistill.distill_rows(per_replica_batch)
    teacher_batch = distill_rows or per_replica_batch
    group = group or Group.of_run(config, strategy)
    with strategy.scope(), _global_policy(config.trainer.mixed_precision):
        student = task.build_model(per_replica_batch)
        teacher = teacher_sources.build(config, task, teacher_batch, group)
        model = CodistillModel(
            student, teacher, output_kind=task.output_kind,
            distill_loss=config.codistill.distill_loss,
            distill_weight=config.codistill.distill_weight,
            temperature=config.codistill.temperature,
            burn_in_steps=config.codistill.burn_in_steps, distill_rows=distill_rows,
            regularization_schedule=weight_decay_schedule(
                config.trainer.weight_decay_schedule, config.trainer.lr_decay_boundaries),
            noise_scale_interval=config.trainer.noise_scale_interval or None)
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
        raise not_writable(config.model_dir, error) from None


@contextlib.contextmanager
def _global_policy(name):
    """Keras' global precision policy while the group's models are built, then the old one."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def check_fits_strategy(config, strategy):
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


def _train(config, task, strategy, model, group, start_step):
    """Fits the group from ``start_step`` to --train_steps; returns its last logs and the
    seconds it took. A resumed group reads its input on where it stopped: where the order
    is fixed by the seed (LM, Criteo, clusters) the same batches, token for token, as an
    uninterrupted run; ImageNet's crops and flips are not seeded, so only its position is.
    The skipped elements are produced and dropped (the LM re-reads and re-tokenizes its
    documents up to there, ImageNet decodes its images): the cost of a recorded skip."""
    total = config.trainer.train_steps
    steps_per_loop = _steps_per_loop(config)
    if start_step >= total:  # killed after its last checkpoint, before metrics.json
        return {}, 0.0
    config_lib.check_resumes_between_executions(config, start_step)
    dataset = resumed_input(task.train_dataset, start_step, strategy)
    callbacks = group.callbacks(model, task.units_per_row * config.trainer.batch_size,
                                task.throughput_unit)
    start = time.perf_counter()
    try:
        history = model.fit(dataset, epochs=math.ceil((total - start_step) / steps_per_loop),
                            steps_per_epoch=steps_per_loop, callbacks=callbacks, verbose=0)
    finally:
        group.close_exchange()
    return {k: v[-1] for k, v in history.history.items()}, time.perf_counter() - start


def _evaluate(config, task, strategy, model):
    reset_carried_state(model.student)
    dataset = strategy.distribute_datasets_from_function(task.eval_dataset)
    steps = config.trainer.eval_steps or None
    logs = model.evaluate(dataset, steps=steps, verbose=0, return_dict=True)
    return task.summarize_eval(logs)


def _metrics(group, model, train_logs, eval_logs, seconds):
    """The group's training metrics (``Group.metrics``) and the held-out ones."""
    metrics = group.metrics(model, train_logs, seconds)
    metrics["eval_loss"] = eval_logs.get("loss")
    metrics.update({f"eval_{k}": v for k, v in eval_logs.items() if k != "loss"})
    return metrics


def _scaling_metrics(config, task, metrics) -> dict:
    """The numbers the scaling advice rests on beside the group's own, and the advice
    (``runner.scaling``)."""
    numbers = {"batch_rows": config.trainer.batch_size, "units_per_row": task.units_per_row,
               "throughput_unit": task.throughput_unit,
               "noise_scale_interval": config.trainer.noise_scale_interval,
               "noise_scale_averaging_steps": AVERAGING_STEPS,
               "noise_scale_warmup_steps": WARMUP_STEPS}
    return {**numbers, "scaling_advice": scaling.from_metrics({**metrics, **numbers})}


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
