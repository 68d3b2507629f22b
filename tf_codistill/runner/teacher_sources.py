"""What ``--teacher`` names: one factory per teacher source.

A source is built in the strategy's scope from the run's config, its task and
the rows each teacher copy scores per replica. Adding one is adding its name to
``config.TEACHERS`` (the flag's choices) and its ``TeacherSourceKind`` here.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from tf_codistill import config as config_lib
from tf_codistill.config import layout
from tf_codistill.config.topology import peers_of
from tf_codistill.core.teachers import FixedTeacher, PriorTeacher, TeacherSource
from tf_codistill.exchange.peers import CheckpointPeers, build_teacher_copy
from tf_codistill.runner import evaluation

PEER_POLL_INTERVAL_S = 0.5  # a manifest read; cheap next to a step of any real model


@dataclasses.dataclass(frozen=True)
class TeacherSourceKind:
    """How to build one kind of teacher source, and what it asks of the group."""

    # (config, task, teacher rows per replica) -> the source, or None for no teacher
    build: Callable[..., Optional[TeacherSource]]
    # The group publishes its weights for its peers to reload (checkpoint exchange).
    publishes: bool = False


def _checkpoint_peers(config, task, teacher_batch):
    """The other groups' published weights, reloaded into frozen copies (the paper's)."""
    groups = peers_of(config.group, config.num_groups, config.codistill.topology)
    if not groups:
        return None
    directories = [layout.GroupLayout.of(config.model_dir, g).published for g in groups]
    precision = config.codistill.teacher_precision
    return CheckpointPeers(directories,
                           lambda: build_teacher_copy(lambda: task.build_model(teacher_batch),
                                                      precision),
                           reload_interval=config.codistill.reload_interval,
                           reload_offset=config.codistill.reload_offset,
                           poll_interval_s=PEER_POLL_INTERVAL_S,
                           staleness_warning_s=config.codistill.staleness_warning_s,
                           max_staleness=config.codistill.teacher_staleness_limit,
                           final_step=config.trainer.train_steps)


def _label_prior(config, task, teacher_batch):
    """A fixed prior over the outputs: the label-smoothing baselines."""
    return PriorTeacher(task.label_prior(config.codistill.teacher))


def _ensemble(config, task, teacher_batch):
    """The frozen ensemble of already trained groups: phase two of two-phase distillation."""
    directories = config.codistill.teacher_dirs
    configs = [evaluation.load_run_config(directory) for directory in directories]
    evaluation.check_same_model([config, *configs], "--teacher_dirs")
    models = []
    for directory in directories:
        model = task.build_model(teacher_batch)
        evaluation.restore_student(model, evaluation.latest_checkpoint(directory))
        models.append(model)
    return FixedTeacher(models)


TEACHER_SOURCES = {
    "peers": TeacherSourceKind(_checkpoint_peers, publishes=True),
    "uniform": TeacherSourceKind(_label_prior),
    "unigram": TeacherSourceKind(_label_prior),
    "ensemble": TeacherSourceKind(_ensemble),
}


def kind_of(config: config_lib.RunConfig) -> TeacherSourceKind:
    return TEACHER_SOURCES[config.codistill.teacher]


def build(config: config_lib.RunConfig, task, teacher_batch: int) -> Optional[TeacherSource]:
    """The student's teacher source for ``config.codistill.teacher``."""
    return kind_of(config).build(config, task, teacher_batch)
