"""What a training set-up provides to the loop: data, model, metrics (Model Garden's Task)."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from tf_codistill.runner.config import ConfigError, RunConfig


class Task:
    """One set-up of the paper: LM, Criteo, ImageNet, or the tiny clusters task."""

    ModelConfig: type = type(None)  # the task's model section: a dataclass of ``knob``s
    output_kind = "softmax"

    def __init__(self, config: RunConfig):
        self.config = config

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
