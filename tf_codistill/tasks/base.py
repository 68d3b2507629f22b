"""What a training set-up provides to the loop: data, model, metrics (Model Garden's Task)."""

from __future__ import annotations

import dataclasses

import tensorflow as tf
import tf_keras as keras

from tf_codistill.config import AT_LEAST_1, ConfigError, RunConfig, knob


@dataclasses.dataclass(frozen=True)
class NoSettings:
    """A task section without settings."""


@dataclasses.dataclass(frozen=True)
class InputFiles:
    """The data section of a task that reads training and held-out files."""

    train_files: tuple[str, ...] = knob((), "Training files (globs allowed).")
    eval_files: tuple[str, ...] = knob((), "Held-out files; --task=lm without them holds out "
                                       "a partition of --train_files.")


@dataclasses.dataclass(frozen=True)
class TokenRows:
    """The data section of a task whose batches are rows of tokens (the language models)."""

    seq_len: int = knob(32, "Tokens per LM batch row.", valid=AT_LEAST_1)


class Task:
    """One set-up of the paper: LM, Criteo, ImageNet, or the tiny clusters task.

    A task of one's own subclasses it, implements ``build_model``, ``train_dataset``
    and ``eval_dataset``, and runs as ``--task=package.module:ClassName``.
    """

    ModelConfig: type = NoSettings  # the architecture: a frozen dataclass of ``knob``s
    DataConfig: type = NoSettings  # where the data comes from: a frozen dataclass of ``knob``s
    output_kind = "softmax"  # or "sigmoid": independent binary logits

    def __init__(self, config: RunConfig):
        self.config = config  # resolved: config.model and config.data are this task's sections

    def loss(self):
        """The task loss phi on logits (a ``keras.losses.Loss`` or a function returning one
        value per element); None: cross entropy for ``output_kind``."""
        return None

    def check_inputs(self) -> None:
        """Raises ValueError saying what to pass when required data is missing."""

    def build_model(self, per_replica_batch: int) -> keras.Model:
        raise NotImplementedError

    def serving_model(self, student: keras.Model) -> keras.Model:
        """What export/ holds: the trained student, or a wrapper taking the raw inputs
        where the input pipeline preprocesses them for training (Criteo's hashing)."""
        return student

    def train_dataset(self, context: tf.distribute.InputContext) -> tf.data.Dataset:
        """Endless per-replica batches of this group's partition, this worker's shard."""
        raise NotImplementedError

    def eval_dataset(self, context: tf.distribute.InputContext) -> tf.data.Dataset:
        """Finite per-replica batches of held-out data no group trains on."""
        raise NotImplementedError

    def metrics(self) -> list:
        return []

    def label_prior(self, kind: str):
        """Weights of the "uniform" or "unigram" prior over the outputs (label smoothing)."""
        raise ConfigError(f"--teacher={kind} (label smoothing) is not available for "
                          f"--task={self.config.task}; use --teacher=peers.")

    def learning_rate(self):
        """A float or a LearningRateSchedule; the trainer's rate by default."""
        return self.config.trainer.learning_rate

    def input_stats(self) -> dict:
        """Counters of the training input read so far (records, drops by reason)."""
        return {}

    def summarize_eval(self, logs: dict) -> dict:
        """Adds derived figures (e.g. perplexity) to the evaluation logs."""
        return dict(logs)

    throughput_unit = "examples"

    @property
    def units_per_row(self) -> int:
        """Throughput units (examples, or tokens for an LM) in one row of a batch."""
        return 1


def expand_files(patterns, flag: str) -> list[str]:
    """Globs to sorted paths; a pattern that matches nothing is an error naming it."""
    files = []
    for pattern in patterns:
        matches = tf.io.gfile.glob(pattern)
        if not matches:
            raise ConfigError(f"--{flag}: {pattern!r} matches no file; pass existing files "
                              "(globs allowed).")
        files.extend(matches)
    return sorted(set(files))


def group_input_context(config: RunConfig, context: tf.distribute.InputContext
                        ) -> tf.distribute.InputContext:
    """This worker's shard of this group's partition, as one more level of sharding.

    With a disjoint partition, group k of N reads pipeline shards k*P .. k*P+P-1
    of N*P; with the same data, every group reads all P shards.
    """
    if config.codistill.partition == "same" or config.num_groups == 1:
        return context
    pipelines = context.num_input_pipelines
    return tf.distribute.InputContext(
        num_input_pipelines=pipelines * config.num_groups,
        input_pipeline_id=config.group * pipelines + context.input_pipeline_id,
        num_replicas_in_sync=context.num_replicas_in_sync)
