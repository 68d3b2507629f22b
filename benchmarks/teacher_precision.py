"""How much a low-precision teacher changes the distillation loss, against float32.

    python benchmarks/teacher_precision.py

Trains a CPU-sized LM teacher briefly on token streams (so its predictions are
not uniform), publishes it at every precision through the real exchange, loads
each copy (16-bit copies also compute in 16 bits), and compares the
distillation loss a fixed student gets from each on the same batches.
"""

import os
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from absl import app, flags  # noqa: E402

from tf_codistill.exchange import snapshots  # noqa: E402
from tf_codistill.core.losses import get_distillation_loss  # noqa: E402
from tf_codistill.models.lstm_lm import LanguageModelConfig, StatefulLanguageModel  # noqa: E402
from tf_codistill.exchange.peers import CheckpointPeers, build_teacher_copy, named_weights  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("train_steps", 300, "Steps to train teacher and student on bigram streams.")
flags.DEFINE_integer("eval_batches", 5, "Batches the losses are compared on.")

BATCH, LENGTH, VOCAB = 16, 32, 500


def build_lm():
    return StatefulLanguageModel(LanguageModelConfig(vocab_size=VOCAB, embedding_dim=64,
                                                     units=128), BATCH)


def patterned_batches(seed, count):
    """Token streams from a fixed bigram rule (next = rule[token] 80% of the time)."""
    rule = np.random.RandomState(1234).permutation(VOCAB)
    rng = np.random.RandomState(seed)
    for _ in range(count):
        tokens = rng.randint(0, VOCAB, (BATCH, LENGTH + 1))
        for t in range(1, LENGTH + 1):
            follow = rng.rand(BATCH) < 0.8
            tokens[follow, t] = rule[tokens[follow, t - 1]]
        yield tokens[:, :-1].astype("int32"), tokens[:, 1:].astype("int32")


def load_copy(directory, precision, example):
    peers = CheckpointPeers([directory], lambda: build_teacher_copy(build_lm, precision),
                            poll_interval_s=3600)
    peers.frozen_models[0](example)
    peers.poller.poll_once()
    assert peers.swap_in_new_weights(0) == 1
    peers.close()
    copy = peers.frozen_models[0]
    copy.reset_states()
    return copy


def trained_lm(seed):
    keras.utils.set_random_seed(seed)
    model = build_lm()
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    for x, y in patterned_batches(seed, FLAGS.train_steps):
        model.train_on_batch(x, y)
    return model


def main(argv):
    del argv
    teacher, student = trained_lm(0), trained_lm(1)
    eval_data = list(patterned_batches(2, FLAGS.eval_batches))
    loss = get_distillation_loss("cross_entropy")
    kl = get_distillation_loss("kl")
    results, drift, reference_logits = {}, {}, None
    with tempfile.TemporaryDirectory() as root:
        for precision in ("float32", "bfloat16", "float16", "int8"):
            directory = os.path.join(root, precision)
            published = snapshots.PeerPublisher(directory, precision=precision)
            published.publish(1, named_weights(teacher))
            copy = load_copy(directory, precision, eval_data[0][0])
            student.reset_states()
            logits = [copy(x) for x, _ in eval_data]
            values = [float(tf.reduce_mean(loss(loss.target([t], [1.0]), student(x))))
                      for t, (x, _) in zip(logits, eval_data)]
            results[precision] = np.mean(values)
            reference_logits = reference_logits or logits
            drift[precision] = np.mean([float(tf.reduce_mean(kl(kl.target([r], [1.0]), t)))
                                        for r, t in zip(reference_logits, logits)])
    reference = results["float32"]
    print(f"LM 2 x LSTM 128, vocab {VOCAB}; teacher and student trained {FLAGS.train_steps} "
          f"steps each; over {FLAGS.eval_batches} batches of {BATCH} x {LENGTH} tokens")
    for precision, value in results.items():
        print(f"{precision:>9} teacher: distill loss {value:.5f}  difference vs float32 "
              f"{value - reference:+.5f} ({(value - reference) / reference:+.4%})  "
              f"KL(float32 teacher || this teacher) {drift[precision]:.2e}")


if __name__ == "__main__":
    app.run(main)
