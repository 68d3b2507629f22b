"""The resolved configuration of a run: one definition per knob.

Every setting is a dataclass field declared with ``knob``: its default, its
help text and its valid values. The sections here hold what every task shares
(the run, the trainer, codistillation); each task owns its model and data
sections (``Task.ModelConfig``, ``Task.DataConfig``), which
``tasks.resolve`` fills in. ``runner.flags`` derives the train command's flags
from these fields, ``check`` validates a config however it was made (flags, a
config file, Python), and the resolved config goes to
``<group_dir>/config.json``, which child processes and resumed runs read back
with ``read``.

This package is the bottom layer: it imports nothing else of tf_codistill, so
every other layer may import it. The names a choice-valued knob accepts are
declared here; the modules that implement them (losses, schedules, precisions,
optimizers, strategies, teacher sources) key their registries by these names,
and tests/test_architecture.py checks that the two agree.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Optional

import tensorflow as tf

from tf_codistill.config import layout
from tf_codistill.config.files import write_json
from tf_codistill.config.topology import TOPOLOGIES, peers_of

# The names of choice-valued knobs; their implementations key registries by them.
OPTIMIZERS = ("adam", "adagrad", "sgd", "momentum")  # runner.optimizers
WEIGHT_DECAY_SCHEDULES = ("constant", "step_with_lr")  # core.schedules
DISTILLATION_LOSSES = ("cross_entropy", "kl", "logit_mse")  # core.losses
PRECISIONS = ("float32", "bfloat16", "float16", "int8")  # exchange.precision
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")  # runner.strategies
TEACHERS = ("peers", "uniform", "unigram", "ensemble")  # runner.teacher_sources
CLUSTERS = ("none", "slurm")  # cluster.slurm
DEFAULT_PORT_BASE = 8888  # SlurmClusterResolver's default
PARTITIONS = ("disjoint", "same")
MIXED_PRECISION_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
# A healthy peer's snapshots reach this group every --reload_interval of the peer's steps,
# plus a poll (0.5 s) and the write: ~75 steps for a peer 1.5x slower at interval 50.
# Three intervals keep peers up to ~2.5x slower, or one publish late; a dead peer stops
# pulling 3 intervals after its last snapshot arrived (150 steps at interval 50).
STALENESS_INTERVALS = 3


class ConfigError(ValueError):
    """A flag, path or model_dir that cannot be used; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Range:
    """A valid range, as a predicate and the words that describe it in an error."""

    valid: Callable[[Any], bool]
    expected: str


AT_LEAST_0 = Range(lambda v: v >= 0, ">= 0")
AT_LEAST_1 = Range(lambda v: v >= 1, ">= 1")
POSITIVE = Range(lambda v: v > 0, "> 0")


def knob(default, help: str, *, choices=None, valid: Optional[Range] = None):
    """A config field: its default, its flag's help, and its valid values."""
    return dataclasses.field(default=default,
                             metadata={"help": help, "choices": choices, "range": valid})


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    train_steps: int = knob(1000, "Optimizer steps per group.", valid=AT_LEAST_1)
    batch_size: int = knob(32, "Global batch size of one group.", valid=AT_LEAST_1)
    learning_rate: float = knob(1e-3, "Peak learning rate.", valid=POSITIVE)
    optimizer: str = knob("adam", "Optimizer.", choices=OPTIMIZERS)
    momentum: float = knob(0.9, "Momentum of --optimizer=momentum.", valid=AT_LEAST_0)
    warmup_steps: int = knob(0, "Linear learning-rate warm-up steps.", valid=AT_LEAST_0)
    lr_decay_boundaries: tuple[int, ...] = knob(
        (), "Steps at which the learning rate drops x0.1.")
    weight_decay: float = knob(1e-4, "L2 weight decay of the image models' kernels.",
                               valid=AT_LEAST_0)
    weight_decay_schedule: str = knob(
        "constant", "Factor on the models' regularization losses (weight decay) by step: "
        "constant x1, or step_with_lr, Sodhani et al. (2021)'s accounting for "
        "codistillation's own regularization: x1, x0.1 from the first "
        "--lr_decay_boundaries step, 0 from the second (needs two boundaries).",
        choices=WEIGHT_DECAY_SCHEDULES)
    steps_per_loop: int = knob(50, "Steps between checkpoints and progress lines.",
                               valid=AT_LEAST_1)
    keep_checkpoints: int = knob(
        3, "Checkpoints kept per group; 0 keeps one per --steps_per_loop, from which "
        "tf_codistill.evaluate draws validation curves.", valid=AT_LEAST_0)
    eval_steps: int = knob(50, "Evaluation batches at the end (0: the whole set).",
                           valid=AT_LEAST_0)
    seed: int = knob(0, "Seed for initialization and data order.")
    steps_per_execution: int = knob(
        1, "Train steps per call into the device (TPUs and large GPUs want tens to hundreds); "
        "checkpoints, publishes and peer reloads happen between calls, so --steps_per_loop "
        "and --reload_interval are rounded up to multiples of it.", valid=AT_LEAST_1)
    jit_compile: bool = knob(
        False, "Compile the train and eval steps with XLA (model.compile(jit_compile=True)). "
        "Measure before turning it on: it pays for some models and not others.")
    mixed_precision: str = knob(
        "float32", "Keras precision policy of the group's models: variables stay float32, "
        "mixed_* compute in 16 bits (mixed_float16 adds dynamic loss scaling). Teacher copies "
        "of peers compute at --teacher_precision.", choices=MIXED_PRECISION_POLICIES)
    noise_scale_interval: int = knob(
        50, "Measure the gradient noise scale (B_simple, McCandlish et al. 2018: the batch past "
        "which a larger one stops saving steps) while training: with one replica every this "
        "many steps, from the batch's two halves (one more backward pass of the student); "
        "with several replicas every step, from their gradients before the all-reduce; not "
        "in the first 50 steps (core.noise_scale.WARMUP_STEPS), whose gradients would outweigh "
        "the rest. In the progress lines, TensorBoard and metrics.json. 0: off.",
        valid=AT_LEAST_0)


@dataclasses.dataclass(frozen=True)
class CodistillConfig:
    distill_loss: str = knob(
        "cross_entropy", "psi: soft-target cross entropy (the paper's), KL at a "
        "temperature, or squared error between logits.", choices=DISTILLATION_LOSSES)
    distill_weight: float = knob(1.0, "Weight of the distillation term.", valid=AT_LEAST_0)
    temperature: float = knob(1.0, "Softmax temperature of cross_entropy and kl.",
                              valid=POSITIVE)
    burn_in_steps: int = knob(0, "Steps trained on the task loss alone.", valid=AT_LEAST_0)
    distill_fraction: float = knob(
        1.0, "Share of each replica's batch rows (LM: streams) that the teacher copies score "
        "and the distillation term covers: the first rows of every batch, so a stateful "
        "teacher follows the same streams. The teachers' forward pass is what a codistilled "
        "step costs over a plain one, and it shrinks with the rows; 1: every row, the "
        "paper's. The per-replica batch times it must be a whole number.",
        valid=Range(lambda v: 0 < v <= 1, "in (0, 1]"))
    reload_interval: int = knob(50, "Steps between reloads of peer checkpoints (and between "
                                "publishes of this group's weights).", valid=AT_LEAST_1)
    reload_offset: int = knob(
        5, "Groups publish at multiples of --reload_interval and reload this many steps "
        "later (modulo the interval), once the peers' copies of that multiple have arrived: "
        "the teacher is then reload_offset to reload_offset + reload_interval - 1 steps old; "
        "metrics.json records the age measured (teacher_age_mean_steps, _max_steps).",
        valid=AT_LEAST_0)
    topology: str = knob("all_to_all", "Which peers each group reads.", choices=TOPOLOGIES)
    teacher_precision: str = knob(
        "float32", "Precision of the published teacher weights and of the teacher copies' "
        "forward pass (int8 weights compute in bfloat16).", choices=PRECISIONS)
    partition: str = knob("disjoint", "Groups read disjoint partitions of the data, or the "
                          "same data.", choices=PARTITIONS)
    teacher: str = knob(
        "peers", "What the distillation term pulls toward: the peer groups' predictions, "
        "or, as the paper's label-smoothing baselines, the uniform or unigram distribution "
        "of the training targets; or, for two-phase distillation, the ensemble of the "
        "trained groups in --teacher_dirs.", choices=TEACHERS)
    teacher_dirs: tuple[str, ...] = knob(
        (), "--teacher=ensemble: trained group directories (e.g. "
        "runs/a/group_0,runs/b/group_0) whose mean prediction is the fixed teacher.")
    staleness_warning_s: float = knob(600.0, "Warn when a peer published nothing new for "
                                      "this many seconds.", valid=POSITIVE)
    max_teacher_staleness: int = knob(
        0, "A peer that published nothing for more than this many of this group's "
        "steps (dead, stalled or restarting) gets weight 0 until it publishes again; counted "
        "in metrics.json (peers_dropped, teacher_dropped_steps) and TensorBoard. A peer that "
        "keeps publishing stays a teacher however far behind it is, also one restarted from "
        "an older checkpoint (its copy keeps the newest weights it sent until it publishes "
        "past them). 0: 3 x "
        "--reload_interval, which keeps a healthy peer up to about 2.5 times slower than "
        "this group (it publishes every --reload_interval of its own steps) or one publish "
        "late, and drops a dead one 3 intervals after its last snapshot.", valid=AT_LEAST_0)

    def distill_rows(self, per_replica_batch: int) -> int | None:
        """The rows of each replica's batch that distill (None: all of them)."""
        if self.distill_fraction == 1:
            return None
        rows = self.distill_fraction * per_replica_batch
        if abs(rows - round(rows)) > 1e-6 or round(rows) < 1:
            whole = sorted({k / per_replica_batch for k in (1, per_replica_batch // 4,
                                                            per_replica_batch // 2) if k})
            raise ConfigError(
                f"--distill_fraction={self.distill_fraction} of {per_replica_batch} rows per "
                f"replica is {rows:g} rows; pass a fraction that makes whole rows, e.g. "
                + " or ".join(f"{f:g}" for f in whole) + ".")
        return int(round(rows))

    @property
    def teacher_staleness_limit(self) -> int:
        """--max_teacher_staleness resolved: 0 means STALENESS_INTERVALS reload intervals."""
        return self.max_teacher_staleness or STALENESS_INTERVALS * self.reload_interval


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The whole run; ``model`` and ``data`` are the task's own sections (``Task.ModelConfig``,
    ``Task.DataConfig``). None (or, read from a file, a dict) until ``tasks.resolve`` fills
    them in with the task's classes."""

    task: str = knob("lm", "Set-up to train: the paper's LM, Criteo or ImageNet, the LM on "
                     "a generated language with a known entropy floor (hmm_lm), or the tiny "
                     "clusters task used by tests (lm, criteo, imagenet, hmm_lm, clusters); "
                     "or a task of your own as package.module:ClassName (a subclass of "
                     "tf_codistill.tasks.base.Task).")
    model_dir: str = knob("", "Directory holding everything the run makes; rerun the same "
                          "command to resume.")
    num_groups: int = knob(1, "Groups (model copies) that codistill.", valid=AT_LEAST_1)
    group: int = knob(0, "Run only this group (0-based); unset with --num_groups > 1 "
                      "starts every group as a local process.")
    strategy: str = knob("default", "tf.distribute strategy inside a group.",
                         choices=STRATEGIES)
    tpu: str = knob("", "TPU name or grpc:// address for --strategy=tpu.")
    cluster: str = knob(
        "none", "Where each process learns its group: none (--group, or local processes), or "
        "slurm: every srun task derives --group and its worker index from SLURM_PROCID "
        "(group = rank // --workers_per_group) and joins its group's multi_worker strategy.",
        choices=CLUSTERS)
    workers_per_group: int = knob(
        1, "Workers (processes) of one group's synchronous strategy, with --cluster=slurm "
        "and for tf_codistill.launch's manifests.", valid=AT_LEAST_1)
    cluster_port_base: int = knob(
        DEFAULT_PORT_BASE, "With --cluster=slurm: a task listens on this port plus its index "
        "on its node (SLURM_LOCALID), so tasks sharing a node never clash.",
        valid=Range(lambda v: 1024 <= v <= 65535 - 256, "between 1024 and 65279"))
    trainer: TrainerConfig = TrainerConfig()
    codistill: CodistillConfig = CodistillConfig()
    model: Any = None  # None: the task's defaults
    data: Any = None  # None: the task's defaults

    @property
    def layout(self) -> layout.GroupLayout:
        return layout.GroupLayout.of(self.model_dir, self.group)

    @property
    def group_dir(self) -> str:
        return self.layout.directory

    @property
    def init_seed(self) -> int:
        """Seed of this group's initialization: groups start from different points."""
        return group_seed(self.trainer.seed, self.group)

    @property
    def data_seed(self) -> int:
        """Seed of this group's data order (``group_seed``)."""
        return group_seed(self.trainer.seed, self.group)


def group_seed(seed: int, group: int) -> int:
    """The seed of group ``group`` of a run seeded ``seed``; distinct for every (seed, group)
    pair, so seed s's group 1 never starts or reads like seed s + 1's group 0."""
    return seed * 1000 + group


SECTIONS = {"trainer": TrainerConfig, "codistill": CodistillConfig}
TASK_SECTIONS = ("model", "data")  # each task's own classes (Task.ModelConfig, .DataConfig)


def with_defaults(section: type, **defaults) -> type:
    """A subclass of ``section`` whose named knobs default to other values, their help,
    choices and range kept: one declaration of a setting that tasks default differently."""
    fields = [(f.name, f.type, knob(defaults.pop(f.name), f.metadata["help"],
                                    choices=f.metadata["choices"], valid=f.metadata["range"]))
              for f in knobs(section) if f.name in defaults]
    if defaults:
        raise TypeError(f"{section.__name__} has no knobs {sorted(defaults)}.")
    return dataclasses.make_dataclass(section.__name__, fields, bases=(section,), frozen=True)


def knobs(section: type) -> list[dataclasses.Field]:
    """The fields of a section that are settings (not nested sections)."""
    return [f for f in dataclasses.fields(section) if "help" in f.metadata]


def section_from(kind: type, value, key: str):
    """``value`` as a ``kind`` section: None gives the defaults, a dict (read from a file)
    its known keys, other keys dropped and missing ones at their defaults."""
    if value is None:
        return kind()
    if isinstance(value, dict):
        names = {f.name for f in dataclasses.fields(kind)}
        return kind(**{k: _tuples(v) for k, v in value.items() if k in names})
    if not isinstance(value, kind):
        raise ConfigError(f"config.{key} is {type(value).__name__}, not {kind.__name__}; pass "
                          f"{key}={kind.__name__}(...) or None.")
    return value


def check(config: RunConfig) -> None:
    """Raises ConfigError naming the first setting that is not valid and what to pass.

    The task's sections are checked once ``tasks.resolve`` has filled them in."""
    sections = [config, config.trainer, config.codistill]
    sections += [getattr(config, key) for key in TASK_SECTIONS
                 if dataclasses.is_dataclass(getattr(config, key))]
    for section in sections:
        check_section(section)
    _check_combinations(config)


def check_section(section) -> None:
    """Raises ConfigError naming the first knob of ``section`` out of its valid values."""
    for field in knobs(type(section)):
        check_value(field, getattr(section, field.name))


def check_value(field: dataclasses.Field, value) -> None:
    """Raises ConfigError when ``value`` is not one of the knob's choices or out of its range."""
    choices, valid = field.metadata["choices"], field.metadata["range"]
    if choices is not None and value not in choices:
        raise ConfigError(f"--{field.name}={value!r} is not valid; choose one of "
                          f"{tuple(choices)}.")
    if valid is not None and not valid.valid(value):
        raise ConfigError(f"--{field.name}={value} is out of range; pass a value "
                          f"{valid.expected}.")


def _check_combinations(config: RunConfig) -> None:
    codistill, trainer = config.codistill, config.trainer
    if not 0 <= config.group < config.num_groups:
        raise ConfigError(f"--group={config.group} is out of range: with "
                          f"--num_groups={config.num_groups}, pass a group between 0 and "
                          f"{config.num_groups - 1}.")
    try:
        peers_of(config.group, config.num_groups, codistill.topology)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if (codistill.teacher == "ensemble") != bool(codistill.teacher_dirs):
        raise ConfigError("--teacher=ensemble (two-phase distillation) and --teacher_dirs go "
                          "together: pass --teacher=ensemble --teacher_dirs=<trained group "
                          "dirs, e.g. runs/a/group_0,runs/b/group_0>.")
    _check_whole_executions(trainer)
    if trainer.weight_decay_schedule == "step_with_lr" and len(trainer.lr_decay_boundaries) < 2:
        raise ConfigError(
            "--weight_decay_schedule=step_with_lr cuts weight decay x0.1 at the first "
            "learning-rate decay and to 0 at the second, so it needs two "
            f"--lr_decay_boundaries, got {len(trainer.lr_decay_boundaries)}; pass two or more "
            "steps (e.g. --lr_decay_boundaries=2346,4692) or --weight_decay_schedule=constant.")


# ---------------------------------------------------------------------------------------------
# Device calls of --steps_per_execution steps: every rule about them, in one place.

def _check_whole_executions(trainer: TrainerConfig) -> None:
    """The last device call must end at --train_steps, not overshoot it."""
    k = trainer.steps_per_execution
    if trainer.train_steps % k:
        raise ConfigError(
            f"--train_steps={trainer.train_steps} is not a multiple of --steps_per_execution={k}"
            f", so the last device call would overshoot it; pass --train_steps="
            f"{trainer.train_steps // k * k or k} or {-(-trainer.train_steps // k) * k}.")


def aligned_to_executions(config: RunConfig) -> RunConfig:
    """The config with its intervals rounded up to multiples of --steps_per_execution.

    Checkpoints, publishes and reloads happen between device calls of K steps,
    so their intervals must be multiples of K; each rounding is printed.
    """
    k = config.trainer.steps_per_execution
    if k == 1:
        return config

    def rounded(name, value):
        up = -(-value // k) * k
        if up != value:
            print(f"group {config.group}: --{name}={value} is not a multiple of "
                  f"--steps_per_execution={k}; using {up}", flush=True)
        return up

    trainer = dataclasses.replace(
        config.trainer, steps_per_loop=rounded("steps_per_loop", config.trainer.steps_per_loop))
    codistill = dataclasses.replace(config.codistill, reload_interval=rounded(
        "reload_interval", config.codistill.reload_interval))
    return dataclasses.replace(config, trainer=trainer, codistill=codistill)


def check_resumes_between_executions(config: RunConfig, start_step: int) -> None:
    """A resumed run's first device call must start where a call of the old run ended."""
    k = config.trainer.steps_per_execution
    if start_step % k:
        raise ConfigError(
            f"group {config.group} resumes from step {start_step}, which is not a multiple of "
            f"--steps_per_execution={k}: device calls would miss the reload, checkpoint and "
            f"last steps; resume with a --steps_per_execution that divides {start_step}.")


def to_dict(config: RunConfig) -> dict:
    return dataclasses.asdict(config)


def from_dict(values: dict) -> RunConfig:
    """The RunConfig of ``to_dict``; keys a newer or older version lacks take defaults.

    The task's sections stay dicts until ``tasks.resolve`` makes them its classes."""
    top = {f.name for f in knobs(RunConfig)}
    arguments = {k: v for k, v in values.items() if k in top}
    for key, section in SECTIONS.items():
        arguments[key] = section_from(section, values.get(key) or {}, key)
    for key in TASK_SECTIONS:
        arguments[key] = values.get(key)
    return RunConfig(**arguments)


def read(path: str) -> RunConfig:
    """The RunConfig saved at ``path`` (a group's config.json or a launcher's file)."""
    if not tf.io.gfile.exists(path):
        raise ConfigError(f"{path} does not exist: pass a config.json written by a run "
                          "(<model_dir>/group_<k>/config.json).")
    with tf.io.gfile.GFile(path) as f:
        try:
            return from_dict(json.load(f))
        except (json.JSONDecodeError, TypeError) as error:
            raise ConfigError(f"{path} is not a run config ({error}); pass a config.json "
                              "written by a run.") from None


def write_or_check(config: RunConfig) -> None:
    """Writes config.json into a new group directory, or refuses another architecture.

    Only what shapes the checkpoint (the task and its model section) must stay
    the same between reruns: steps, learning rate, weight decay, data and the
    codistillation settings may change.
    """
    path = config.layout.config
    if tf.io.gfile.exists(path):
        saved = read(path)
        if saved.task == config.task:
            saved = dataclasses.replace(
                saved, model=section_from(type(config.model), saved.model, "model"))
        for key in ("task", "model"):
            if _normalized(getattr(saved, key)) != _normalized(getattr(config, key)):
                raise ConfigError(
                    f"--model_dir={config.model_dir} holds a run with a different "
                    f"architecture ({key}: saved {_normalized(getattr(saved, key))}, asked "
                    f"{_normalized(getattr(config, key))}). Pass a new --model_dir, or the "
                    "same model flags to resume.")
        return
    tf.io.gfile.makedirs(config.group_dir)
    write_json(path, to_dict(config))


def _normalized(value):
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value))


def _tuples(value):
    return tuple(value) if isinstance(value, list) else value
