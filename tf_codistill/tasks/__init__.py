"""Training set-ups by name; each module is imported only when its task is asked for."""

from __future__ import annotations

import importlib

from tf_codistill.runner.config import ConfigError, RunConfig
from tf_codistill.tasks.base import Task

TASKS = {
    "clusters": "tf_codistill.tasks.clusters:ClustersTask",
    "criteo": "tf_codistill.tasks.criteo:CriteoTask",
    "hmm_lm": "tf_codistill.tasks.hidden_markov:HiddenMarkovTask",
    "imagenet": "tf_codistill.tasks.imagenet:ImageNetTask",
    "lm": "tf_codistill.tasks.lm:LanguageModelTask",
}


def task_class(name: str) -> type[Task]:
    if name not in TASKS:
        raise ConfigError(f"--task={name!r} is not known; choose one of {sorted(TASKS)}.")
    module_name, class_name = TASKS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def get_task(config: RunConfig) -> Task:
    return task_class(config.task)(config)
