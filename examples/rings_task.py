"""A task of your own for the train command: two noisy rings, inner against outer.

    python -m tf_codistill.train --task=examples.rings_task:RingsTask --num_groups=2 \
        --model_dir=/tmp/rings --train_steps=400

Run from the repository's root (or put this file's package on PYTHONPATH). Its model
section adds --width, its data section --noise and --train_examples (docs/own-task.md).
"""

import dataclasses

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tf_codistill.config import AT_LEAST_1, Range, knob
from tf_codistill.tasks.base import Task, group_input_context


@dataclasses.dataclass(frozen=True)
class RingsModel:
    """The architecture: a rerun of a model_dir must keep it."""

    width: int = knob(32, "Units of each of the two hidden layers.", valid=AT_LEAST_1)


@dataclasses.dataclass(frozen=True)
class RingsData:
    """Where the data comes from."""

    noise: float = knob(0.3, "Standard deviation of the points around their ring.",
                        valid=Range(lambda v: v >= 0, ">= 0"))
    train_examples: int = knob(8192, "Training points, split between the groups.",
                               valid=AT_LEAST_1)


def rings(count, noise, seed):
    """Points on rings of radius 1 (label 0) and 2 (label 1), with Gaussian noise."""
    rng = np.random.default_rng(seed)
    outer = rng.integers(0, 2, count)
    angle = rng.uniform(0, 2 * np.pi, count)
    points = (1 + outer)[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    points += rng.normal(0, noise, points.shape)
    return points.astype("float32"), outer.astype("float32")[:, None]


class RingsTask(Task):
    ModelConfig = RingsModel
    DataConfig = RingsData
    output_kind = "sigmoid"  # one logit per point

    def build_model(self, per_replica_batch):
        keras.utils.set_random_seed(self.config.init_seed)  # groups start apart
        width = self.config.model.width
        return keras.Sequential([keras.Input((2,)),
                                 keras.layers.Dense(width, activation="relu"),
                                 keras.layers.Dense(width, activation="relu"),
                                 keras.layers.Dense(1)])

    def train_dataset(self, context):
        """Endless batches of this group's share (and this worker's), in a seeded order."""
        data = rings(self.config.data.train_examples, self.config.data.noise, seed=0)
        shard = group_input_context(self.config, context)
        batch = context.get_per_replica_batch_size(self.config.trainer.batch_size)
        return (tf.data.Dataset.from_tensor_slices(data)
                .shard(shard.num_input_pipelines, shard.input_pipeline_id)
                .shuffle(4096, seed=self.config.data_seed).repeat()
                .batch(batch, drop_remainder=True))

    def eval_dataset(self, context):
        """Held-out points no group trains on."""
        data = rings(2048, self.config.data.noise, seed=1)
        batch = context.get_per_replica_batch_size(self.config.trainer.batch_size)
        return (tf.data.Dataset.from_tensor_slices(data)
                .shard(context.num_input_pipelines, context.input_pipeline_id)
                .batch(batch, drop_remainder=True))

    def metrics(self):
        return [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)]  # on logits

    def serving_model(self, student):
        """export/ serves probabilities."""
        return keras.Sequential([keras.Input((2,)), student, keras.layers.Activation("sigmoid")])
