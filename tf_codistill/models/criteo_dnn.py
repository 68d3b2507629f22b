"""The paper's Criteo model: hashed categorical embeddings and integers into a ReLU DNN.

Inputs are what ``data_pipelines.criteo`` yields: ``integers`` (13 log-transformed
floats) and ``categorical`` (26 strings). Each categorical feature is hashed
into its own range of ``hash_buckets`` rows of one embedding table, so equal
strings in different columns do not share an embedding. The output is one
logit (the logistic output of the paper; use ``output_kind="sigmoid"``).
"""

from __future__ import annotations

import itertools
from typing import Sequence

import tensorflow as tf
import tf_keras as keras

from data_pipelines.criteo import (CATEGORICAL_KEY, INTEGER_KEY, NUM_CATEGORICAL,
                                   NUM_INTEGER)

PAPER_HIDDEN_UNITS = (2560, 1024, 256)


@keras.utils.register_keras_serializable(package="tf_codistill")
class HashedEmbeddings(keras.layers.Layer):
    """[batch, features] strings -> [batch, features * dim] embeddings.

    Hashing is Keras' ``Hashing`` layer (FarmHash); column ``k`` is offset by
    ``k * hash_buckets`` into one shared table.
    """

    def __init__(self, num_features: int, hash_buckets: int, embedding_dim: int,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.num_features = num_features
        self.hash_buckets = hash_buckets
        self.embedding_dim = embedding_dim
        self.seed = seed
        self.hashing = keras.layers.Hashing(num_bins=hash_buckets)
        self.embedding = keras.layers.Embedding(
            num_features * hash_buckets, embedding_dim,
            embeddings_initializer=keras.initializers.RandomUniform(
                -0.05, 0.05, seed=seed))

    def call(self, strings):
        offsets = tf.range(self.num_features, dtype=tf.int64) * self.hash_buckets
        ids = self.hashing(strings) + offsets
        vectors = self.embedding(ids)
        return tf.reshape(vectors, [-1, self.num_features * self.embedding_dim])

    def get_config(self):
        return {**super().get_config(), "num_features": self.num_features,
                "hash_buckets": self.hash_buckets,
                "embedding_dim": self.embedding_dim, "seed": self.seed}


def build_criteo_dnn(hidden_units: Sequence[int] = PAPER_HIDDEN_UNITS, *,
                     hash_buckets: int = 100_000, embedding_dim: int = 16,
                     seed: int | None = None, name: str = "criteo_dnn") -> keras.Model:
    """The fully connected ReLU DNN with a logistic output (one logit).

    ``seed`` fixes every initializer, so copies built with different seeds are
    independent retrains and copies with the same seed start identical.
    """
    if not hidden_units or any(int(units) < 1 for units in hidden_units):
        raise ValueError(f"hidden_units must be positive layer widths, got {hidden_units!r}.")
    if hash_buckets < 1 or embedding_dim < 1:
        raise ValueError("hash_buckets and embedding_dim must be >= 1, got "
                         f"{hash_buckets} and {embedding_dim}.")
    seeds = itertools.repeat(None) if seed is None else itertools.count(seed * 1000)
    next_seed = seeds.__next__

    integers = keras.Input(shape=(NUM_INTEGER,), name=INTEGER_KEY, dtype=tf.float32)
    categorical = keras.Input(shape=(NUM_CATEGORICAL,), name=CATEGORICAL_KEY,
                              dtype=tf.string)
    embedded = HashedEmbeddings(NUM_CATEGORICAL, hash_buckets, embedding_dim,
                                seed=next_seed(), name="hashed_embeddings")(categorical)
    x = keras.layers.Concatenate()([integers, embedded])
    for index, units in enumerate(hidden_units):
        x = keras.layers.Dense(int(units), activation="relu", name=f"hidden_{index}",
                               kernel_initializer=keras.initializers.GlorotUniform(
                                   seed=next_seed()))(x)
    logit = keras.layers.Dense(1, name="logit", kernel_initializer=(
        keras.initializers.GlorotUniform(seed=next_seed())))(x)
    return keras.Model({INTEGER_KEY: integers, CATEGORICAL_KEY: categorical}, logit,
                       name=name)


def criteo_metrics() -> list[keras.metrics.Metric]:
    """The paper's Criteo metrics on logits: log loss and AUC."""
    return [keras.metrics.BinaryCrossentropy(from_logits=True, name="log_loss"),
            keras.metrics.AUC(from_logits=True, name="auc")]
