"""The paper's Criteo model: categorical embeddings and integers into a ReLU DNN.

The trained model takes what ``data_pipelines.criteo`` yields with
``hash_buckets``: ``integers`` (13 log-transformed floats) and
``categorical_ids`` (26 hashed ids), numbers only, so its train and eval steps
compile with XLA. Each categorical feature has its own range of
``hash_buckets`` rows of one embedding table, so equal strings in different
columns do not share an embedding. The output is one logit (the logistic
output of the paper; use ``output_kind="sigmoid"``).

``serving_model`` wraps a trained model for export: it takes the raw
``categorical`` strings and hashes them with the input pipeline's own function.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import tensorflow as tf
import tf_keras as keras

from data_pipelines.criteo import (CATEGORICAL_IDS_KEY, CATEGORICAL_KEY, INTEGER_KEY,
                                   NUM_CATEGORICAL, NUM_INTEGER, hash_categoricals)

PAPER_HIDDEN_UNITS = (2560, 1024, 256)


@keras.utils.register_keras_serializable(package="tf_codistill")
class CategoricalEmbeddings(keras.layers.Layer):
    """[batch, features] ids in ``[0, hash_buckets)`` -> [batch, features * dim] embeddings.

    Column ``k`` is offset by ``k * hash_buckets`` into one shared table. The
    table is the attribute ``embedding``, as in the model that hashed its own
    strings, so that model's checkpoints restore into this one.
    """

    def __init__(self, num_features: int, hash_buckets: int, embedding_dim: int,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.num_features = num_features
        self.hash_buckets = hash_buckets
        self.embedding_dim = embedding_dim
        self.seed = seed
        self.embedding = keras.layers.Embedding(
            num_features * hash_buckets, embedding_dim,
            embeddings_initializer=keras.initializers.RandomUniform(
                -0.05, 0.05, seed=seed))

    def call(self, ids):
        offsets = tf.range(self.num_features, dtype=tf.int64) * self.hash_buckets
        vectors = self.embedding(tf.cast(ids, tf.int64) + offsets)
        return tf.reshape(vectors, [-1, self.num_features * self.embedding_dim])

    def get_config(self):
        return {**super().get_config(), "num_features": self.num_features,
                "hash_buckets": self.hash_buckets,
                "embedding_dim": self.embedding_dim, "seed": self.seed}


@keras.utils.register_keras_serializable(package="tf_codistill")
class HashCategoricals(keras.layers.Layer):
    """Raw categorical strings -> ids, by the input pipeline's ``hash_categoricals``."""

    def __init__(self, hash_buckets: int, **kwargs):
        super().__init__(**kwargs)
        self.hash_buckets = hash_buckets

    def call(self, strings):
        return hash_categoricals(strings, self.hash_buckets)

    def get_config(self):
        return {**super().get_config(), "hash_buckets": self.hash_buckets}


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
    categorical_ids = keras.Input(shape=(NUM_CATEGORICAL,), name=CATEGORICAL_IDS_KEY,
                                  dtype=tf.int64)
    embedded = CategoricalEmbeddings(NUM_CATEGORICAL, hash_buckets, embedding_dim,
                                     seed=next_seed(),
                                     name="categorical_embeddings")(categorical_ids)
    x = keras.layers.Concatenate()([integers, embedded])
    for index, units in enumerate(hidden_units):
        x = keras.layers.Dense(int(units), activation="relu", name=f"hidden_{index}",
                               kernel_initializer=keras.initializers.GlorotUniform(
                                   seed=next_seed()))(x)
    logit = keras.layers.Dense(1, name="logit", kernel_initializer=(
        keras.initializers.GlorotUniform(seed=next_seed())))(x)
    return keras.Model({INTEGER_KEY: integers, CATEGORICAL_IDS_KEY: categorical_ids}, logit,
                       name=name)


def serving_model(trained: keras.Model) -> keras.Model:
    """The trained model behind the pipeline's hashing: raw features in, the same logit out.

    It takes ``integers`` (log-transformed, as the reader yields them) and the
    raw ``categorical`` strings, hashed into the trained model's own number of
    buckets, so a served model needs no hashing of its own.
    """
    hash_buckets = trained.get_layer("categorical_embeddings").hash_buckets
    integers = keras.Input(shape=(NUM_INTEGER,), name=INTEGER_KEY, dtype=tf.float32)
    categorical = keras.Input(shape=(NUM_CATEGORICAL,), name=CATEGORICAL_KEY,
                              dtype=tf.string)
    ids = HashCategoricals(hash_buckets, name="hash_categoricals")(categorical)
    logit = trained({INTEGER_KEY: integers, CATEGORICAL_IDS_KEY: ids})
    return keras.Model({INTEGER_KEY: integers, CATEGORICAL_KEY: categorical}, logit,
                       name=f"{trained.name}_serving")


def criteo_metrics() -> list[keras.metrics.Metric]:
    """The paper's Criteo metrics on logits: log loss and AUC."""
    return [keras.metrics.BinaryCrossentropy(from_logits=True, name="log_loss"),
            keras.metrics.AUC(from_logits=True, name="auc")]
