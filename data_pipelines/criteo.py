"""Criteo Display Ad Challenge TSV: a tf.data reader and a generator of look-alike data.

A line is ``label \\t I1..I13 \\t C1..C26``: a 0/1 click label, 13 integer
counts and 26 categorical features hashed to 8 hex digits; any feature may be
empty (missing). The reader yields ``(features, label float32[1])``:

* ``integers``: float32[13], log-transformed, ``log(1 + max(x, 0))``, missing ->
  0, so that counts spanning six orders of magnitude become inputs of similar
  scale;
* with ``hash_buckets``, ``categorical_ids``: int64[26], each string hashed into
  ``[0, hash_buckets)`` by ``hash_categoricals`` (what the trained model takes:
  numbers only, so its steps compile with XLA); without, ``categorical``:
  string[26], the raw values (missing -> ""), what a served model takes.

Malformed lines (wrong field count, a label other than 0/1, a non-numeric
integer feature) are skipped and counted by reason in a ``CriteoStats``, with
the first few logged as ``file:line: reason``; ``strict=True`` fails on the
first one instead, naming the file and line.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

import numpy as np
import tensorflow as tf

NUM_INTEGER = 13
NUM_CATEGORICAL = 26
NUM_FIELDS = 1 + NUM_INTEGER + NUM_CATEGORICAL
INTEGER_KEY = "integers"
CATEGORICAL_KEY = "categorical"
CATEGORICAL_IDS_KEY = "categorical_ids"

REASON_OK = 0
REASON_FIELD_COUNT = 1
REASON_LABEL = 2
REASON_INTEGER = 3
REASONS = ("ok", "wrong_field_count", "bad_label", "non_numeric_integer")
_REASON_TEXT = ("", f"wrong field count (expected {NUM_FIELDS} tab-separated fields)",
                "label is not 0 or 1", "an integer feature is not an integer")
# Up to 18 digits: larger values would overflow int64 and are not counts.
_INTEGER_PATTERN = r"-?[0-9]{1,18}|"


class CriteoStats:
    """Lines read by a Criteo dataset, by outcome: "ok" or the reason skipped.

    Counts live in a lookup table updated while the dataset is iterated, so
    they are observable during and after training; one stats object may be
    shared by several datasets.
    """

    def __init__(self, log_first_n: int = 10):
        with tf.init_scope():
            self._table = tf.lookup.experimental.MutableHashTable(
                key_dtype=tf.string, value_dtype=tf.int64, default_value=0)
        self._keys = tf.constant(REASONS)
        self.log_first_n = int(log_first_n)

    def as_dict(self) -> dict[str, int]:
        values = self._table.lookup(self._keys).numpy()
        return {reason: int(value) for reason, value in zip(REASONS, values)}

    @property
    def skipped(self) -> int:
        counts = self.as_dict()
        return sum(counts[r] for r in REASONS if r != "ok")

    def __repr__(self):
        return f"CriteoStats({self.as_dict()})"

    def _add(self, reason_counts: tf.Tensor) -> tf.Tensor:
        """Adds per-reason counts; returns the skipped total *before* the update."""
        current = self._table.lookup(self._keys)
        before = tf.reduce_sum(current[1:])
        with tf.control_dependencies([self._table.insert(self._keys,
                                                         current + reason_counts)]):
            return tf.identity(before)


def criteo_dataset(file_patterns: str | Sequence[str], batch_size: int, *,
                   strict: bool = False, stats: CriteoStats | None = None,
                   shuffle: bool = False, seed: int | None = None,
                   num_epochs: int | None = 1, shuffle_buffer: int = 10_000,
                   input_context: tf.distribute.InputContext | None = None,
                   drop_remainder: bool = False,
                   parse_chunk: int = 1024,
                   hash_buckets: int | None = None) -> tf.data.Dataset:
    """Batches of (features, label) from Criteo-format TSV files.

    Args:
      file_patterns: glob(s) of TSV files, a list or a comma-separated string
        (plain text; ``.gz`` is read as GZIP).
      batch_size: the global batch; with ``input_context`` each pipeline makes
        its per-replica share.
      strict: raise ``tf.errors.InvalidArgumentError`` on the first malformed
        line instead of skipping it.
      stats: the ``CriteoStats`` to count lines in (pass one to observe them).
      shuffle, seed: shuffle files and examples (training).
      num_epochs: passes over the data; None repeats forever.
      input_context: from ``strategy.distribute_datasets_from_function``; files
        are split between input pipelines (lines, when files are too few).
      parse_chunk: lines parsed together; parsing is vectorized per chunk.
      hash_buckets: hash the categoricals into this many ids per feature
        (``categorical_ids``, for training); None keeps the raw strings.
    """
    if hash_buckets is not None and hash_buckets < 1:
        raise ValueError(f"hash_buckets must be >= 1 or None, got {hash_buckets}.")
    files = _list_files(file_patterns)
    stats = stats if stats is not None else CriteoStats()
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline = input_context.input_pipeline_id if input_context else 0
    shard_files = pipelines > 1 and len(files) >= pipelines

    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shard_files:
        dataset = dataset.shard(pipelines, pipeline)
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed)
    dataset = dataset.interleave(_numbered_lines, cycle_length=min(len(files), 4),
                                 num_parallel_calls=tf.data.AUTOTUNE,
                                 deterministic=True)
    if pipelines > 1 and not shard_files:
        dataset = dataset.shard(pipelines, pipeline)
    dataset = dataset.batch(parse_chunk)
    dataset = dataset.map(_parse_chunk, num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
    # Sequential: the counts are read-modify-write updates of one table.
    dataset = dataset.map(lambda *chunk: _count_and_filter(chunk, stats, strict))
    if hash_buckets is not None:
        dataset = dataset.map(lambda features, label: (hashed(features, hash_buckets), label),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.unbatch()
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)
    if num_epochs != 1:
        dataset = dataset.repeat(num_epochs)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    options = tf.data.Options()
    if input_context is not None:
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF)
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def parse_lines(lines) -> tuple[dict, tf.Tensor, tf.Tensor]:
    """(features, label, reason) of a batch of TSV lines; reason 0 means valid."""
    fields = tf.strings.split(tf.convert_to_tensor(lines, tf.string), "\t")
    count = fields.row_lengths()
    dense = fields.to_tensor(default_value="", shape=[None, NUM_FIELDS])
    label_text = dense[:, 0]
    integer_text = dense[:, 1:1 + NUM_INTEGER]
    categorical = dense[:, 1 + NUM_INTEGER:]
    label_ok = tf.strings.regex_full_match(label_text, "[01]")
    integers_ok = tf.reduce_all(
        tf.strings.regex_full_match(integer_text, _INTEGER_PATTERN), axis=1)
    reason = tf.where(count != NUM_FIELDS, REASON_FIELD_COUNT,
                      tf.where(~label_ok, REASON_LABEL,
                               tf.where(~integers_ok, REASON_INTEGER, REASON_OK)))
    valid_integers = tf.strings.regex_full_match(integer_text, "-?[0-9]{1,18}")
    values = tf.strings.to_number(
        tf.where(valid_integers, integer_text, "0"), tf.float64)
    integers = tf.cast(tf.math.log1p(tf.maximum(values, 0.0)), tf.float32)
    label = tf.strings.to_number(tf.where(label_ok, label_text, "0"), tf.float32)
    features = {INTEGER_KEY: integers, CATEGORICAL_KEY: categorical}
    return features, label[:, tf.newaxis], tf.cast(reason, tf.int32)


def hash_categoricals(categorical, hash_buckets: int) -> tf.Tensor:
    """string[..., 26] -> int64 ids in ``[0, hash_buckets)``: FarmHash64 modulo the buckets.

    The one definition of the hashing, used by the training input and by the
    served model (``models.criteo_dnn.serving_model``), so both feed the same ids.
    It is ``keras.layers.Hashing(num_bins=hash_buckets)``'s hash, the one the model
    applied itself before the hashing moved into the input: earlier checkpoints
    see the same ids.
    """
    return tf.strings.to_hash_bucket_fast(categorical, hash_buckets)


def hashed(features: dict, hash_buckets: int) -> dict:
    """Raw features (``categorical`` strings) -> model inputs (``categorical_ids``)."""
    return {INTEGER_KEY: features[INTEGER_KEY],
            CATEGORICAL_IDS_KEY: hash_categoricals(features[CATEGORICAL_KEY], hash_buckets)}


def _list_files(file_patterns):
    if isinstance(file_patterns, str):
        file_patterns = file_patterns.split(",")  # a comma list, as flags give it
    patterns = [pattern for pattern in file_patterns if pattern]
    if not patterns:
        raise ValueError("No Criteo files given: pass train/eval file patterns "
                         "(e.g. --train_files=/data/criteo/train-*.tsv).")
    files = []
    for pattern in patterns:
        matched = sorted(tf.io.gfile.glob(pattern))
        if not matched:
            raise FileNotFoundError(
                f"No Criteo TSV files match {pattern!r}. Download the Criteo Display "
                "Ad Challenge data (train.txt, tab-separated: label, 13 integer and "
                "26 categorical features) and point the file pattern at it, or make "
                "look-alike data with data_pipelines.criteo.write_synthetic_criteo.")
        files.extend(matched)
    return files


def _numbered_lines(filename):
    compression = tf.where(tf.strings.regex_full_match(filename, r".*\.gz"),
                           "GZIP", "")
    lines = tf.data.TextLineDataset(filename, compression_type=compression)
    return lines.enumerate(start=1).map(
        lambda number, line: (filename, number, line))


def _parse_chunk(filenames, numbers, lines):
    features, label, reason = parse_lines(lines)
    where = tf.strings.join([filenames, tf.strings.as_string(numbers)], ":")
    return features, label, reason, where


def _count_and_filter(chunk, stats: CriteoStats, strict: bool):
    features, label, reason, where = chunk
    counts = tf.math.bincount(reason, minlength=len(REASONS),
                              maxlength=len(REASONS), dtype=tf.int64)
    bad = reason != REASON_OK
    messages = tf.strings.join(
        [where, tf.gather(tf.constant(_REASON_TEXT), reason)], ": ")
    bad_messages = tf.boolean_mask(messages, bad)
    if strict:
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(bad)),
            ["Malformed Criteo line (strict mode; pass strict=False to skip and "
             "count such lines):", bad_messages[:1]], summarize=1)
        deps = [check]
    else:
        deps = [_log_skipped(stats, counts, bad_messages)]
    with tf.control_dependencies(deps):
        good = tf.identity(~bad)
    features = {key: tf.boolean_mask(value, good) for key, value in features.items()}
    return features, tf.boolean_mask(label, good)


def _log_skipped(stats, counts, bad_messages):
    """Counts the chunk; logs its bad lines while under ``stats.log_first_n``."""
    before = stats._add(counts)  # pylint: disable=protected-access
    room = tf.maximum(tf.cast(stats.log_first_n, tf.int64) - before, 0)
    shown = bad_messages[:tf.cast(room, tf.int32)]

    def log():
        with tf.control_dependencies([tf.print(
                "Skipped malformed Criteo lines:", shown, summarize=-1,
                output_stream=sys.stderr)]):
            return tf.constant(True)

    return tf.cond(tf.size(shown) > 0, log, lambda: tf.constant(False))


# --- look-alike data -------------------------------------------------------


def write_synthetic_criteo(path: str, num_rows: int, seed: int = 0, *,
                           structure_seed: int = 0,
                           missing_rate: float = 0.05) -> dict:
    """Writes ``num_rows`` Criteo-format lines whose labels can be learned.

    The "world" (vocabularies, weights) comes from ``structure_seed``; the rows
    from ``seed``, so train and validation files made with different ``seed`` and
    the same ``structure_seed`` share one labelling rule:

      logit = b + sum_j w_j z(I_j), j in I1..I4
              + sum_k e_k[C_k], k in C1..C6 (per-category effects)
              + s[C7] * z(I5) (a sign chosen by a category: an interaction)
      label ~ Bernoulli(sigmoid(logit)), with b set for a click rate near 0.25

    where z is the log transform of the reader, standardized. Integer counts are
    log-normal (I2 may be negative, as in the real data), categoricals are Zipf
    draws from vocabularies of 3 to 20,000 hex tokens; every field is missing with
    probability ``missing_rate``. The other features are noise.

    Returns the row count, click rate and the Bayes log loss (the true
    probabilities' log loss on these rows: the floor any model can reach).
    """
    if num_rows < 1:
        raise ValueError(f"num_rows must be >= 1, got {num_rows}.")
    world = _World(structure_seed)
    rng = np.random.default_rng([structure_seed, seed])
    raw_integers, integer_missing = world.sample_integers(rng, num_rows, missing_rate)
    ranks, categorical_missing = world.sample_categories(rng, num_rows, missing_rate)
    logits = world.logits(raw_integers, integer_missing, ranks, categorical_missing)
    probs = 1.0 / (1.0 + np.exp(-logits))
    labels = (rng.random(num_rows) < probs).astype(np.int64)
    _write_tsv(path, labels, raw_integers, integer_missing,
               world.tokens(ranks), categorical_missing)
    eps = 1e-12
    bayes = -np.mean(labels * np.log(probs + eps) + (1 - labels) * np.log(1 - probs + eps))
    return {"rows": int(num_rows), "click_rate": float(labels.mean()),
            "bayes_log_loss": float(bayes)}


class _World:
    """Vocabularies and weights of the generator's labelling rule."""

    INFORMATIVE_INTEGERS = 4
    INFORMATIVE_CATEGORICALS = 6
    INTERACTION_INTEGER = 4
    INTERACTION_CATEGORICAL = 6

    def __init__(self, structure_seed):
        rng = np.random.default_rng(structure_seed)
        self.integer_mu = rng.uniform(0.0, 4.0, NUM_INTEGER)
        self.integer_sigma = rng.uniform(0.5, 2.0, NUM_INTEGER)
        self.vocab_sizes = rng.permutation(
            np.geomspace(3, 20_000, NUM_CATEGORICAL).astype(int))
        self.vocabularies = [np.array([f"{token:08x}" for token in
                                       rng.choice(2**32, size=v, replace=False)])
                             for v in self.vocab_sizes]
        self.integer_weights = rng.normal(0.0, 0.6, self.INFORMATIVE_INTEGERS)
        self.category_effects = [rng.normal(0.0, 0.8, v) for v in
                                 self.vocab_sizes[:self.INFORMATIVE_CATEGORICALS]]
        self.interaction_signs = rng.choice(
            [-0.8, 0.8], self.vocab_sizes[self.INTERACTION_CATEGORICAL])
        self.bias = 0.0
        calibration = np.random.default_rng([structure_seed, 2**31])
        self.bias = self._calibrated_bias(calibration, target_rate=0.25)

    def sample_integers(self, rng, n, missing_rate):
        values = np.floor(rng.lognormal(self.integer_mu, self.integer_sigma,
                                        (n, NUM_INTEGER))).astype(np.int64)
        values[:, 1] -= rng.integers(0, 3, n)  # I2 takes small negative values
        return values, rng.random((n, NUM_INTEGER)) < missing_rate

    def sample_categories(self, rng, n, missing_rate):
        ranks = np.stack([_zipf_ranks(rng, v, n) for v in self.vocab_sizes], axis=1)
        return ranks, rng.random((n, NUM_CATEGORICAL)) < missing_rate

    def tokens(self, ranks):
        return np.stack([vocab[ranks[:, k]] for k, vocab in enumerate(self.vocabularies)],
                        axis=1)

    def logits(self, raw_integers, integer_missing, ranks, categorical_missing):
        z = np.where(integer_missing, 0.0, np.log1p(np.maximum(raw_integers, 0)))
        z = (z - self.integer_mu) / (self.integer_sigma + 1.0)
        logit = self.bias + z[:, :self.INFORMATIVE_INTEGERS] @ self.integer_weights
        for k, effects in enumerate(self.category_effects):
            logit += np.where(categorical_missing[:, k], 0.0, effects[ranks[:, k]])
        c = self.INTERACTION_CATEGORICAL
        sign = np.where(categorical_missing[:, c], 0.0,
                        self.interaction_signs[ranks[:, c]])
        return logit + sign * z[:, self.INTERACTION_INTEGER]

    def _calibrated_bias(self, rng, target_rate, n=20_000):
        raw, missing = self.sample_integers(rng, n, 0.05)
        ranks, cat_missing = self.sample_categories(rng, n, 0.05)
        base = self.logits(raw, missing, ranks, cat_missing)
        low, high = -10.0, 10.0
        for _ in range(50):
            mid = (low + high) / 2
            rate = np.mean(1 / (1 + np.exp(-(base + mid))))
            low, high = (mid, high) if rate < target_rate else (low, mid)
        return (low + high) / 2


def _zipf_ranks(rng, vocab_size, n, exponent=1.1):
    weights = 1.0 / np.arange(1, vocab_size + 1) ** exponent
    return rng.choice(vocab_size, size=n, p=weights / weights.sum())


def _write_tsv(path, labels, raw_integers, integer_missing, tokens, categorical_missing):
    """Builds the text column by column: a Python loop per field is slow."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    columns = [labels.astype(str)]
    columns += [np.where(integer_missing[:, j], "", raw_integers[:, j].astype(str))
                for j in range(NUM_INTEGER)]
    columns += [np.where(categorical_missing[:, k], "", tokens[:, k])
                for k in range(NUM_CATEGORICAL)]
    with open(path, "w", encoding="ascii") as out:
        out.writelines("\t".join(row) + "\n" for row in zip(*columns))

