"""A tiny classification task: Gaussian clusters with noisy training labels.

Small enough for tests and the quickstart to train several groups in seconds,
and noisy labels are where a peer's soft predictions visibly help.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tf_codistill.config import AT_LEAST_1, knob
from tf_codistill.tasks.base import Task, group_input_context


@dataclasses.dataclass(frozen=True)
class ClustersData:
    num_classes: int = 8
    num_features: int = 16
    train_examples: int = 4096
    eval_examples: int = 4096
    label_noise: float = 0.3
    seed: int = 0


def make_data(spec: ClustersData):
    """((x, y) train, (x, y) eval); training labels flipped with prob. label_noise."""
    rng = np.random.RandomState(spec.seed)
    centers = rng.randn(spec.num_classes, spec.num_features) * 1.2

    def sample(n, noise):
        labels = rng.randint(0, spec.num_classes, size=n)
        features = centers[labels] + rng.randn(n, spec.num_features)
        flip = rng.rand(n) < noise
        labels = np.where(flip, rng.randint(0, spec.num_classes, size=n), labels)
        return features.astype("float32"), labels.astype("int32")

    return sample(spec.train_examples, spec.label_noise), sample(spec.eval_examples, 0.0)


def make_mlp(num_features: int, num_classes: int, hidden_units, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    layers = [keras.layers.InputLayer(input_shape=(num_features,))]
    layers += [keras.layers.Dense(units, activation="relu") for units in hidden_units]
    layers.append(keras.layers.Dense(num_classes))
    return keras.Sequential(layers)


@dataclasses.dataclass(frozen=True)
class ClustersModelSection:
    """The MLP's architecture."""

    hidden_units: tuple[int, ...] = knob((64, 64), "Widths of the MLP's hidden layers.")
    num_classes: int = knob(8, "Classes of the clusters.", valid=AT_LEAST_1)


class ClustersTask(Task):
    """Each group trains on its shard of the examples (disjoint) or on all (same)."""

    ModelConfig = ClustersModelSection

    def __init__(self, config):
        super().__init__(config)
        self.spec = ClustersData(num_classes=config.model.num_classes,
                                 seed=config.trainer.seed)
        self._train, self._eval = make_data(self.spec)

    def build_model(self, per_replica_batch):
        hidden = self.config.model.hidden_units
        seed = self.config.init_seed
        return make_mlp(self.spec.num_features, self.spec.num_classes, hidden, seed)

    def train_dataset(self, context):
        dataset = tf.data.Dataset.from_tensor_slices(self._train)
        shard = group_input_context(self.config, context)
        dataset = dataset.shard(shard.num_input_pipelines, shard.input_pipeline_id)
        batch = context.get_per_replica_batch_size(self.config.trainer.batch_size)
        return (dataset.shuffle(4096, seed=self.config.data_seed)
                .repeat().batch(batch, drop_remainder=True).prefetch(2))

    def eval_dataset(self, context):
        dataset = tf.data.Dataset.from_tensor_slices(self._eval)
        dataset = dataset.shard(context.num_input_pipelines, context.input_pipeline_id)
        batch = context.get_per_replica_batch_size(self.config.trainer.batch_size)
        return dataset.batch(batch, drop_remainder=True)

    def metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def label_prior(self, kind):
        if kind == "uniform":
            return np.ones(self.spec.num_classes)
        return np.bincount(self._train[1], minlength=self.spec.num_classes)
