"""Runs one group of a codistillation job: build in scope, restore, fit, evaluate, export.

Estimator-style: everything a group makes lives in ``<model_dir>/group_<k>/``
(config.json, checkpoints/, published/, logs/, metrics.json, export/), and
running the same command again resumes from the last checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time

import tensorflow as tf
import tf_keras as keras
from absl import logging

from tf_codistill.runner import callbacks as callbacks_lib
from tf_codistill.runner import config as config_lib
from tf_codistill.runner import evaluation
from tf_codistill.runner import layout
from tf_codistill.runner.optimizers import make_optimizer
from tf_codistill.exchange import snapshots
from tf_codistill.core.model import CodistillModel
from tf_codistill.exchange.peers import (BackgroundPublisher, CheckpointPeers, PublishCallback,
                                build_teacher_copy)
from tf_codistill.core.schedules import weight_decay_schedule
from tf_codistill.runner.strategies import get_strategy
from tf_codistill.core.teachers import FixedTeacher, PriorTeacher
from tf_codistill.tasks import get_task
from tf_codistill.exchange.topology import peers_of

PEER_POLL_INTERVAL_S = 0.5  # a manifest read; cheap next to a step of any real model


def run(config: config_lib.RunConfig) -> dict:
    """Trains group ``config.group`` to ``train_steps``; returns its metrics.json."""
    config_lib.check(config)
    task = get_task(config)
    task.check_inputs()
    try:
        strategy = get_strategy(config.strategy, config.tpu)
    except ValueError as error:  # TF_CONFIG that does not parse
        raise config_lib.ConfigError(str(error)) from None
    _check_fits_strategy(config, strategy)
    chief = is_chief(strategy)
    if chief:
        config_lib.write_or_check(config)
    # Global seeds for whatever a model draws without its own seed (dropout, unseeded
    # initializers); the tasks seed their initializers and data order themselves.
    keras.utils.set_random_seed(config.init_seed)
    model, peers = _build(config, task, strategy)
    try:
        checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
        manager = tf.train.CheckpointManager(
            checkpoint, _writable_dir(config.layout.checkpoints, chief),
            max_to_keep=config.trainer.keep_checkpoints or None)
        start_step = _restore(checkpoint, config, model.student)
        finished = _finished_metrics(config, start_step)
        if finished is not None:
            return finished
        train_logs, seconds = _train(config, task, strategy, model, manager, chief, start_step)
        _export(config, model, chief)
        eval_logs = _evaluate(config, task, strategy, model)
        agreement = evaluation.teacher_agreement(task, strategy, model.student, model.teacher,
                                                 config.trainer.eval_steps or None)
    finally:
        if peers is not None:
            peers.close()
    metrics = _metrics(config, model, peers, train_logs, eval_logs, seconds)
    metrics.update(agreement)
    if chief:
        config_lib.write_json(config.layout.metrics, metrics)
    return metrics


def _build(config, task, strategy):
    """The compiled CodistillModel, built in the strategy's scope, and its checkpoint peers.

    The student's teacher is the peer groups; with --teacher=uniform|unigram a
    fixed prior (the label-smoothing baselines); with --teacher=ensemble the
    trained groups of --teacher_dirs (two-phase distillation). peers is None
    without peer groups.
    """
    per_replica_batch = _per_replica_batch(config, strategy)
    with strategy.scope():
        student = task.build_model(per_replica_batch)
        if config.codistill.teacher == "peers":
            teacher = peers = _checkpoint_peers(config, task, per_replica_batch)
        elif config.codistill.teacher == "ensemble":
            teacher, peers = _ensemble_teacher(config, task, per_replica_batch), None
        else:
            teacher, peers = PriorTeacher(task.label_prior(config.codistill.teacher)), None
        model = CodistillModel(
            student, teacher, output_kind=task.output_kind,
            distill_loss=config.codistill.distill_loss,
            distill_weight=config.codistill.distill_weight,
            temperature=config.codistill.temperature,
            burn_in_steps=config.codistill.burn_in_steps,
            regularization_schedule=weight_decay_schedule(
                config.trainer.weight_decay_schedule, config.trainer.lr_decay_boundaries))
        model.compile(make_optimizer(config.trainer, task.learning_rate()),
                      metrics=task.metrics())
    return model, peers


def _finished_metrics(config, start_step):
    """The saved metrics of a group that already trained all its steps, else None."""
    path = config.layout.metrics
    if start_step < config.trainer.train_steps or not tf.io.gfile.exists(path):
        return None
    print(f"group {config.group}: already finished at step {start_step}; metrics in {path}",
          flush=True)
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The worker that writes what the group shares (published weights, metrics)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief)


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


def _per_replica_batch(config, strategy):
    return config.trainer.batch_size // strategy.num_replicas_in_sync


def _steps_per_loop(config):
    return min(config.trainer.steps_per_loop, config.trainer.train_steps)


def _checkpoint_peers(config, task, per_replica_batch):
    groups = peers_of(config.group, config.num_groups, config.codistill.topology)
    if not groups:
        return None
    directories = [layout.GroupLayout.of(config.model_dir, g).published for g in groups]
    precision = config.codistill.teacher_precision
    return CheckpointPeers(directories,
                           lambda: build_teacher_copy(lambda: task.build_model(per_replica_batch),
                                                      precision),
                           reload_interval=config.codistill.reload_interval,
                           reload_offset=config.codistill.reload_offset,
                           poll_interval_s=PEER_POLL_INTERVAL_S,
                           staleness_warning_s=config.codistill.staleness_warning_s)


def _ensemble_teacher(config, task, per_replica_batch):
    """The frozen ensemble of already trained groups: phase two of two-phase distillation."""
    directories = config.codistill.teacher_dirs
    configs = [evaluation.load_run_config(directory) for directory in directories]
    evaluation.check_same_model([config, *configs], "--teacher_dirs")
    models = []
    for directory in directories:
        model = task.build_model(per_replica_batch)
        evaluation.restore_student(model, evaluation.latest_checkpoint(directory))
        models.append(model)
    return FixedTeacher(models)


def _writable_dir(directory, chief):
    """Non-chief workers write their share of a collective save to a private place."""
    if chief:
        return directory
    return tempfile.mkdtemp(prefix="tf_codistill_worker_")


def _restore(checkpoint, config, student):
    """Restores the group's newest checkpoint on every worker; returns its step.

    Non-chief workers save to private directories but restore from the chief's,
    so a resumed multi-worker group starts from one state. The carried LM state
    belongs to the old run's streams, which the new input pipeline does not
    continue, so it starts from zero.
    """
    latest = tf.train.latest_checkpoint(config.layout.checkpoints)
    if latest is None:
        logging.info("Group %d starts from scratch in %s.", config.group, config.group_dir)
        return 0
    evaluation.restore_checkpoint(checkpoint, latest, student,
                                  "The model_dir holds a run of a different model; pass a new "
                                  "--model_dir.")
    step = int(checkpoint.optimizer.iterations.numpy())
    print(f"group {config.group}: resuming from step {step} ({latest})", flush=True)
    return step


def _train(config, task, strategy, model, manager, chief, start_step):
    total = config.trainer.train_steps
    steps_per_loop = _steps_per_loop(config)
    if start_step >= total:  # killed after its last checkpoint, before metrics.json
        return {}, 0.0
    dataset = strategy.distribute_datasets_from_function(task.train_dataset)
    publisher = None
    if chief and config.num_groups > 1 and config.codistill.teacher == "peers":
        publisher = BackgroundPublisher(snapshots.PeerPublisher(
            config.layout.published,
            precision=config.codistill.teacher_precision))
    step_timer = callbacks_lib.StepTimer()
    writer = (tf.summary.create_file_writer(config.layout.codistill_logs)
              if chief else None)
    progress = callbacks_lib.ProgressLogger(
        config.group, task.units_per_row * config.trainer.batch_size, task.throughput_unit,
        model.teacher, writer)
    callbacks = [callbacks_lib.StopAtStep(total),
                 PublishCallback(publisher, model.student, config.codistill.reload_interval),
                 callbacks_lib.CheckpointEveryLoop(manager), progress, step_timer]
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


def _evaluate(config, task, strategy, model):
    if hasattr(model.student, "reset_states"):
        model.student.reset_states()
    dataset = strategy.distribute_datasets_from_function(task.eval_dataset)
    steps = config.trainer.eval_steps or None
    logs = model.evaluate(dataset, steps=steps, verbose=0, return_dict=True)
    return task.summarize_eval(logs)


def _metrics(config, model, peers, train_logs, eval_logs, seconds):
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
        "teacher_age_mean_steps": None,
        "teacher_age_max_steps": None,
        "peer_bytes_read": 0,
        "reload_latency_s": None,
    }
    if peers is not None:
        metrics.update(peers.stats())
    metrics.update({f"eval_{k}": v for k, v in eval_logs.items() if k != "loss"})
    return metrics


def _export(config, model, chief):
    path = config.layout.export
    model.save(path if chief else tempfile.mkdtemp(prefix="tf_codistill_export_"))


def summary_table(metrics_by_group: list[dict], baseline: dict | None = None) -> str:
    """The closing table of a multi-group run; with ``baseline`` (a plain group's metrics),
    also the groups' mean and each group's and the mean's difference from the baseline."""
    lines = [f"{'group':>8} {'steps':>7} {'eval loss':>10} {'perplexity':>11} {'time (s)':>9}"]
    for m in metrics_by_group:
        lines.append(_summary_row(m["group"], m["global_step"], m["eval_loss"],
                                  m.get("eval_perplexity"), m["train_seconds"]))
    if baseline is None:
        return "\n".join(lines)
    losses = [m["eval_loss"] for m in metrics_by_group]
    mean = sum(losses) / len(losses)
    has_perplexity = baseline.get("eval_perplexity") is not None
    if len(metrics_by_group) > 1:
        lines.append(_summary_row("mean", None, mean,
                                  evaluation.perplexity(mean) if has_perplexity else None))
    lines.append(_summary_row("baseline", baseline["global_step"], baseline["eval_loss"],
                              baseline.get("eval_perplexity"), baseline["train_seconds"]))
    lines.append("minus the baseline (negative: codistillation ahead):")
    rows = [(m["group"], m["eval_loss"]) for m in metrics_by_group]
    if len(metrics_by_group) > 1:
        rows.append(("mean", mean))
    for name, loss in rows:
        difference = loss - baseline["eval_loss"]
        perplexity = "-"
        if has_perplexity:
            perplexity = f"{evaluation.perplexity(loss) - baseline['eval_perplexity']:+.2f}"
        lines.append(f"{name:>8} {'':>7} {difference:>+10.4f} {perplexity:>11}")
    difference = mean - baseline["eval_loss"]
    where = "ahead of" if difference < 0 else "behind" if difference > 0 else "level with"
    lines.append(f"The codistilled groups end {where} the baseline: mean eval loss "
                 f"{mean:.4f} against {baseline['eval_loss']:.4f} ({difference:+.4f}; one "
                 "seed: differences of a few hundredths can be noise).")
    return "\n".join(lines)


def _summary_row(name, steps, loss, perplexity=None, seconds=None):
    steps = "" if steps is None else steps
    perplexity = "-" if perplexity is None else f"{perplexity:.2f}"
    seconds = "" if seconds is None else f"{seconds:.1f}"
    return f"{name:>8} {steps:>7} {loss:>10.4f} {perplexity:>11} {seconds:>9}".rstrip()
