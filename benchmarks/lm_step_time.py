"""Training tokens/s of the CPU-sized LM: plain vs codistilled, per teacher precision.

    python benchmarks/lm_step_time.py

One process, the same model and batches for every variant: a plain tf_keras
model, and a CodistillModel whose teacher is a checkpoint peer (loaded from a
real published snapshot) at float32, bfloat16, int8 (bfloat16 compute) and
float16. Timed blocks alternate between variants so machine noise hits all
alike; the ratios are of median step times.
"""

import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from absl import app, flags  # noqa: E402

from tf_codistill.exchange import snapshots  # noqa: E402
from tf_codistill.core.model import CodistillModel  # noqa: E402
from tf_codistill.models.lstm_lm import LanguageModelConfig, StatefulLanguageModel  # noqa: E402
from tf_codistill.exchange.peers import CheckpointPeers, build_teacher_copy, named_weights  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 32, "Streams per batch.")
flags.DEFINE_integer("seq_len", 32, "Tokens per row.")
flags.DEFINE_integer("units", 256, "LSTM units.")
flags.DEFINE_integer("vocab_size", 4000, "Vocabulary size.")
flags.DEFINE_bool("layer_norm", True, "Layer-normalized cells.")
flags.DEFINE_integer("steps", 10, "Steps per timed block.")
flags.DEFINE_integer("repeats", 5, "Timed blocks per variant.")
flags.DEFINE_list("precisions", ["float32", "bfloat16", "int8"], "Teacher precisions.")


def build_lm():
    config = LanguageModelConfig(vocab_size=FLAGS.vocab_size, embedding_dim=128,
                                 units=FLAGS.units, layer_norm=FLAGS.layer_norm)
    return StatefulLanguageModel(config, FLAGS.batch_size)


def plain():
    model = build_lm()
    model.compile(keras.optimizers.Adam(),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def wrapper_only():
    model = CodistillModel(build_lm(), None)
    model.compile(keras.optimizers.Adam())
    return model


def codistilled(peer_dir, precision):
    peers = CheckpointPeers([peer_dir], lambda: build_teacher_copy(build_lm, precision),
                            poll_interval_s=3600)
    peers.frozen_models[0](tf.zeros((FLAGS.batch_size, FLAGS.seq_len), tf.int32))
    peers._poller.poll_once()
    assert peers.swap_in_new_weights(0) == 1
    model = CodistillModel(build_lm(), peers)
    model.compile(keras.optimizers.Adam())
    return model


def block_time(model, x, y):
    start = time.perf_counter()
    for _ in range(FLAGS.steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / FLAGS.steps


def main(argv):
    del argv
    rng = np.random.RandomState(0)
    x = tf.constant(rng.randint(0, FLAGS.vocab_size, (FLAGS.batch_size, FLAGS.seq_len)), tf.int32)
    y = tf.constant(rng.randint(0, FLAGS.vocab_size, (FLAGS.batch_size, FLAGS.seq_len)), tf.int32)
    peer = build_lm()
    peer(x)
    models = {"plain tf_keras LM": plain(), "codistill wrapper, no teacher": wrapper_only()}
    with tempfile.TemporaryDirectory() as root:
        for precision in FLAGS.precisions:
            directory = os.path.join(root, precision)
            snapshots.PeerPublisher(directory, precision=precision).publish(1, named_weights(peer))
            models[f"codistilled, {precision} teacher"] = codistilled(directory, precision)
        for model in models.values():
            model.train_on_batch(x, y)  # trace outside the timing
        times = {name: [] for name in models}
        for _ in range(FLAGS.repeats):
            for name, model in models.items():
                times[name].append(block_time(model, x, y))
    base = statistics.median(times["plain tf_keras LM"])
    tokens = FLAGS.batch_size * FLAGS.seq_len
    print(f"LM 2 x LSTM {FLAGS.units} (layer_norm={FLAGS.layer_norm}), vocab {FLAGS.vocab_size}, "
          f"batch {FLAGS.batch_size} x {FLAGS.seq_len}; median of {FLAGS.repeats} blocks of "
          f"{FLAGS.steps} steps")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<32} {tokens / median:8,.0f} tokens/s  step {median * 1e3:7.1f} ms  "
              f"ratio to plain {median / base:5.2f}")


if __name__ == "__main__":
    app.run(main)
