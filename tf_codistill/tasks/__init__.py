"""Training set-ups by name: the built-in ones, and a user's own as ``package.module:Name``.

A task's module is imported only when its task is asked for. ``resolve`` fills
a config's task sections (``Task.ModelConfig``, ``Task.DataConfig``) with the
task's classes; everything that trains or evaluates starts from a resolved config.
"""

from __future__ import annotations

import dataclasses
import importlib

from tf_codistill import config as config_lib
from tf_codistill.config import ConfigError, RunConfig
from tf_codistill.tasks.base import Task

TASKS = {
    "clusters": "tf_codistill.tasks.clusters:ClustersTask",
    "criteo": "tf_codistill.tasks.criteo:CriteoTask",
    "hmm_lm": "tf_codistill.tasks.hidden_markov:HiddenMarkovTask",
    "imagenet": "tf_codistill.tasks.imagenet:ImageNetTask",
    "lm": "tf_codistill.tasks.lm:LanguageModelTask",
}

# What every task must implement itself (the base class only raises NotImplementedError).
REQUIRED_METHODS = ("build_model", "train_dataset", "eval_dataset")


def task_class(name: str) -> type[Task]:
    """The Task class of ``name``: a built-in name, or ``package.module:ClassName``.

    Raises ConfigError naming what is wrong (unknown name, a module that does not
    import, a missing or non-Task class, a required method not implemented) and
    what to pass instead.
    """
    if name in TASKS:
        return _import_task(TASKS[name], name)
    if ":" not in name:
        raise ConfigError(f"--task={name}: value should be one of {sorted(TASKS)}, or a task "
                          "of your own as --task=package.module:ClassName.")
    return _import_task(name, name)


def get_task(config: RunConfig) -> Task:
    """The task of ``config``, built on the config with its task sections filled in."""
    return task_class(config.task)(resolve(config))


def resolve(config: RunConfig) -> RunConfig:
    """The config with ``model`` and ``data`` as its task's sections: None gives the task's
    defaults, a dict (read from config.json) its known keys."""
    task = task_class(config.task)
    return dataclasses.replace(
        config, model=config_lib.section_from(task.ModelConfig, config.model, "model"),
        data=config_lib.section_from(task.DataConfig, config.data, "data"))


def _import_advice(module_name: str, error: Exception) -> str:
    """Why ``module_name`` did not import and what to do: it was not found (the path),
    another project's package it imports is not installed, or its own code failed."""
    if isinstance(error, ModuleNotFoundError) and error.name:
        parts = module_name.split(".")
        if error.name in {".".join(parts[:i]) for i in range(1, len(parts) + 1)}:
            return (f"({error}); put its directory on PYTHONPATH (or install its package) "
                    "and check the name.")
        missing = error.name.partition(".")[0]
        if missing != parts[0]:  # not a module of the task's own package
            return (f"because it imports {error.name!r}, which is not installed; install "
                    f"it (pip install {missing}, or the package that provides it).")
    return (f"({type(error).__name__}: {error}); fix what its import raises "
            f"(python -c 'import {module_name}' shows where).")


def _import_task(path: str, flag_value: str) -> type[Task]:
    module_name, _, class_name = path.partition(":")
    where = f"--task={flag_value}"
    if not module_name or not class_name:
        raise ConfigError(f"{where}: write a task of your own as package.module:ClassName "
                          "(e.g. --task=my_project.tasks:MyTask).")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # pylint: disable=broad-except
        raise ConfigError(f"{where}: module {module_name!r} does not import "
                          f"{_import_advice(module_name, error)}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"{where}: module {module_name!r} has no {class_name!r}; pass the "
                          "name of a class defined in it.")
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ConfigError(f"{where}: {module_name}.{class_name} is not a Task; subclass "
                          "tf_codistill.tasks.base.Task.")
    missing = [m for m in REQUIRED_METHODS if getattr(cls, m) is getattr(Task, m)]
    if missing:
        raise ConfigError(f"{where}: {module_name}.{class_name} does not implement "
                          f"{', '.join(missing)}; define them (see tf_codistill.tasks.base."
                          "Task).")
    for key in ("ModelConfig", "DataConfig"):
        if not dataclasses.is_dataclass(getattr(cls, key)):
            raise ConfigError(f"{where}: {module_name}.{class_name}.{key} is not a dataclass; "
                              "declare it as a @dataclasses.dataclass(frozen=True) of "
                              "tf_codistill.config.knob fields.")
    return cls
