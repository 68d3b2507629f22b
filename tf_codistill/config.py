"""The resolved configuration of a run: what the flags mean, as plain data.

``train.py`` turns flags into a ``RunConfig``; ``train_lib.run`` needs nothing
else. The config is written to ``<model_dir>/config.json`` so that a rerun can
tell whether the model_dir holds the same run.
"""

from __future__ import annotations

import dataclasses
import json
import os

import tensorflow as tf

from tf_codistill.losses import DISTILLATION_LOSSES
from tf_codistill.precision import PRECISIONS
from tf_codistill.topology import TOPOLOGIES, peers_of

OPTIMIZERS = ("adam", "adagrad", "sgd", "momentum")
PARTITIONS = ("disjoint", "same")
TEACHERS = ("peers", "uniform", "unigram", "ensemble")
WEIGHT_DECAY_SCHEDULES = ("constant", "step_with_lr")  # see schedules.weight_decay_schedule


class ConfigError(ValueError):
    """A flag, path or model_dir that cannot be used; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture: a model_dir holds one architecture for its whole life."""

    vocab_size: int = 0  # 0: taken from the vocabulary file
    embedding_dim: int = 256
    units: int = 1024
    num_layers: int = 2
    layer_norm: bool = True
    hidden_units: tuple[int, ...] = ()
    hash_buckets: int = 100_000
    image_model: str = "resnet50"
    image_size: int = 224
    num_classes: int = 1000
    weight_decay: float = 1e-4


@dataclasses.dataclass(frozen=True)
class DataConfig:
    train_files: tuple[str, ...] = ()
    eval_files: tuple[str, ...] = ()
    data_dir: str = ""
    vocab: str = ""
    seq_len: int = 32
    min_paragraph_words: int = 0  # 0: the data pipeline's documented default
    validation_fraction: float = 0.01  # held-out share of --train_files when no --eval_files


@dataclasses.dataclass(frozen=True)
class CodistillConfig:
    distill_loss: str = "cross_entropy"
    distill_weight: float = 1.0
    temperature: float = 1.0
    burn_in_steps: int = 0
    reload_interval: int = 50
    topology: str = "all_to_all"
    teacher_precision: str = "float32"
    partition: str = "disjoint"
    teacher: str = "peers"  # or label smoothing ("uniform", "unigram"), or "ensemble"
    teacher_dirs: tuple[str, ...] = ()  # --teacher=ensemble: trained groups to distill from
    staleness_warning_s: float = 600.0


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    train_steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    warmup_steps: int = 0
    lr_decay_boundaries: tuple[int, ...] = ()
    weight_decay_schedule: str = "constant"  # or "step_with_lr" (Sodhani et al. 2021)
    steps_per_loop: int = 50
    keep_checkpoints: int = 3  # 0: keep one per loop, for validation curves
    eval_steps: int = 50
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class RunConfig:
    task: str
    model_dir: str
    num_groups: int = 1
    group: int = 0
    strategy: str = "default"
    tpu: str = ""
    trainer: TrainerConfig = TrainerConfig()
    codistill: CodistillConfig = CodistillConfig()
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()

    @property
    def group_dir(self) -> str:
        return group_dir(self.model_dir, self.group)


def group_dir(model_dir: str, group: int) -> str:
    return os.path.join(model_dir, f"group_{group}")


def check_choices(config: RunConfig) -> None:
    """Raises ConfigError naming the first flag whose value is not a valid choice."""
    choices = [
        ("optimizer", config.trainer.optimizer, OPTIMIZERS),
        ("distill_loss", config.codistill.distill_loss, tuple(DISTILLATION_LOSSES)),
        ("topology", config.codistill.topology, TOPOLOGIES),
        ("teacher_precision", config.codistill.teacher_precision, PRECISIONS),
        ("partition", config.codistill.partition, PARTITIONS),
        ("teacher", config.codistill.teacher, TEACHERS),
        ("weight_decay_schedule", config.trainer.weight_decay_schedule, WEIGHT_DECAY_SCHEDULES),
    ]
    for name, value, valid in choices:
        if value not in valid:
            raise ConfigError(f"--{name}={value!r} is not valid; choose one of {valid}.")
    positive = [("train_steps", config.trainer.train_steps),
                ("batch_size", config.trainer.batch_size),
                ("num_groups", config.num_groups),
                ("reload_interval", config.codistill.reload_interval),
                ("steps_per_loop", config.trainer.steps_per_loop)]
    for name, value in positive:
        if value < 1:
            raise ConfigError(f"--{name} must be >= 1, got {value}.")
    _check_ranges(config)
    _check_weight_decay_schedule(config.trainer)
    if not 0 <= config.group < config.num_groups:
        raise ConfigError(f"--group={config.group} is out of range: with "
                          f"--num_groups={config.num_groups}, pass a group between 0 and "
                          f"{config.num_groups - 1}.")
    try:
        peers_of(config.group, config.num_groups, config.codistill.topology)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _check_ranges(config: RunConfig) -> None:
    codistill, trainer, data = config.codistill, config.trainer, config.data
    checks = [
        ("distill_weight", codistill.distill_weight, codistill.distill_weight >= 0, ">= 0"),
        ("temperature", codistill.temperature, codistill.temperature > 0, "> 0"),
        ("burn_in_steps", codistill.burn_in_steps, codistill.burn_in_steps >= 0, ">= 0"),
        ("eval_steps", trainer.eval_steps, trainer.eval_steps >= 0, ">= 0 (0: the whole set)"),
        ("warmup_steps", trainer.warmup_steps, trainer.warmup_steps >= 0, ">= 0"),
        ("learning_rate", trainer.learning_rate, trainer.learning_rate > 0, "> 0"),
        ("validation_fraction", data.validation_fraction,
         0 < data.validation_fraction < 1, "between 0 and 1"),
    ]
    for name, value, valid, expected in checks:
        if not valid:
            raise ConfigError(f"--{name}={value} is out of range; pass a value {expected}.")
    if trainer.keep_checkpoints < 0:
        raise ConfigError(f"--keep_checkpoints={trainer.keep_checkpoints} is out of range; "
                          "pass a value >= 0 (0: keep all).")
    if (codistill.teacher == "ensemble") != bool(codistill.teacher_dirs):
        raise ConfigError("--teacher=ensemble (two-phase distillation) and --teacher_dirs go "
                          "together: pass --teacher=ensemble --teacher_dirs=<trained group "
                          "dirs, e.g. runs/a/group_0,runs/b/group_0>.")


def _check_weight_decay_schedule(trainer: TrainerConfig) -> None:
    if trainer.weight_decay_schedule == "step_with_lr" and len(trainer.lr_decay_boundaries) < 2:
        raise ConfigError(
            "--weight_decay_schedule=step_with_lr cuts weight decay x0.1 at the first "
            "learning-rate decay and to 0 at the second, so it needs two "
            f"--lr_decay_boundaries, got {len(trainer.lr_decay_boundaries)}; pass two or more "
            "steps (e.g. --lr_decay_boundaries=2346,4692) or --weight_decay_schedule=constant.")


def write_or_check(config: RunConfig) -> None:
    """Writes config.json into a new model_dir, or refuses a different architecture.

    Settings that do not change the model (steps, learning rate, ...) may change
    between reruns; the task and the model section may not, since the saved
    checkpoints could not be restored into another architecture.
    """
    path = os.path.join(config.group_dir, "config.json")
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            saved = json.load(f)
        mine = dataclasses.asdict(config)
        for key in ("task", "model"):
            if _normalized(saved.get(key)) != _normalized(mine[key]):
                raise ConfigError(
                    f"--model_dir={config.model_dir} holds a run with a different "
                    f"architecture ({key}: saved {saved.get(key)}, asked {mine[key]}). "
                    "Pass a new --model_dir, or the same model flags to resume.")
        return
    tf.io.gfile.makedirs(config.group_dir)
    write_json(path, dataclasses.asdict(config))


def write_json(path: str, value) -> None:
    """Writes JSON through a temporary file and a rename: readers never see half of it."""
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True, default=float)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def _normalized(value):
    return json.loads(json.dumps(value))
