"""What ``--teacher`` names: one factory per teacher source.

A source is built in the strategy's scope from the run's config, its task, the
rows each teacher copy scores per replica and the group (``runner.group.Group``,
which owns the peers it reads). Adding one is adding its name to
``config.TEACHERS`` (the flag's choices) and its ``TeacherSourceKind`` here.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from tf_codistill import config as config_lib
from tf_codistill.core.teachers import FixedTeacher, PriorTeacher, TeacherSource
from tf_codistill.runner import evaluation


@dataclasses.dataclass(frozen=True)
class TeacherSourceKind:
    """How to build one kind of teacher source, and what it asks of the group."""

    # (config, task, teacher rows per replica, group) -> the source, or None for no teacher
    build: Callable[..., Optional[TeacherSource]]
    # The group publishes its weights for its peers to reload (checkpoint exchange).
    publishes: bool = False


def _checkpoint_peers(config, task, teacher_batch, group):
    """The other groups' published weights, reloaded into frozen copies (the paper's)."""
    return group.teacher(lambda: task.build_model(teacher_batch))


def _label_prior(config, task, teacher_batch, group):
    """A fixed prior over the outputs: the label-smoothing baselines."""
    return PriorTeacher(task.label_prior(config.codistill.teacher))


def _ensemble(config, task, teacher_batch, group):
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


def build(config: config_lib.RunConfig, task, teacher_batch: int,
          group) -> Optional[TeacherSource]:
    """The student's teacher source for ``config.codistill.teacher``."""
    return kind_of(config).build(config, task, teacher_batch, group)
