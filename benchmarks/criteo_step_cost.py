"""Criteo: a codistillation step against a plain step, graph mode and XLA, in one run.

    python benchmarks/criteo_step_cost.py                 # a CPU-sized DNN, batch 256
    python benchmarks/criteo_step_cost.py --hidden_units=2560,1024,256 --hash_buckets=100000 \\
        --batch_size=1024 --steps=5                       # the paper's DNN

The batch is one batch of the training input (generated Criteo-format lines, hashed by the
input pipeline as in training). Variants, each in graph mode and with jit_compile=True:
  plain         the Criteo DNN compiled with its loss (no wrapper)
  codistilled   CodistillModel with one float32 checkpoint peer loaded from a real
                published snapshot
  k/B rows      the same, distilling the first k of the B rows (--distill_fractions)
Every model is built and traced outside the timing; timed blocks of --steps steps cycle
through the variants --repeats times, so machine noise hits all alike. Figures are ratios to
the fastest plain step; min and median are over blocks, spread is (max - min) / median.
"""

import os
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tf_codistill.utils.allocator import cap_malloc_arenas  # noqa: E402

cap_malloc_arenas()  # as the train command does, before TensorFlow starts its threads

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from absl import app, flags  # noqa: E402

import step_timing  # noqa: E402  (benchmarks/step_timing.py: alternating timed blocks)

from data_pipelines import criteo  # noqa: E402
from tf_codistill.core.model import CodistillModel  # noqa: E402
from tf_codistill.exchange import snapshots  # noqa: E402
from tf_codistill.exchange.peers import (CheckpointPeers, build_teacher_copy,  # noqa: E402
                                         named_weights)
from tf_codistill.models.criteo_dnn import build_criteo_dnn  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("hidden_units", ["512", "256", "128"], "Widths of the DNN's hidden layers.")
flags.DEFINE_integer("hash_buckets", 10_000, "Hash buckets per categorical feature.")
flags.DEFINE_integer("embedding_dim", 16, "Embedding size of each categorical feature.")
flags.DEFINE_integer("batch_size", 256, "Examples per step.")
flags.DEFINE_integer("steps", 10, "Steps per timed block.")
flags.DEFINE_integer("repeats", 7, "Timed blocks per variant.")
flags.DEFINE_list("modes", ["graph", "xla"], "graph and/or xla.")


def build_dnn(seed=0):
    return build_criteo_dnn([int(u) for u in FLAGS.hidden_units],
                            hash_buckets=FLAGS.hash_buckets,
                            embedding_dim=FLAGS.embedding_dim, seed=seed)


def plain(jit):
    model = build_dnn()
    model.compile(keras.optimizers.Adagrad(0.01),
                  keras.losses.BinaryCrossentropy(from_logits=True), jit_compile=jit)
    return model


def codistilled(peer_dir, jit, distill_rows=None):
    peers = CheckpointPeers([peer_dir], lambda: build_teacher_copy(build_dnn, "float32"),
                            poll_interval_s=3600)
    peers.poller.poll_once()
    assert peers.swap_in_new_weights(0) == 1
    model = CodistillModel(build_dnn(), peers, output_kind="sigmoid", distill_rows=distill_rows)
    model.compile(keras.optimizers.Adagrad(0.01), jit_compile=jit)
    return model, peers


def one_batch(directory):
    path = os.path.join(directory, "train.tsv")
    criteo.write_synthetic_criteo(path, FLAGS.batch_size, seed=0)
    return next(iter(criteo.criteo_dataset(path, FLAGS.batch_size,
                                           hash_buckets=FLAGS.hash_buckets)))


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as root:
        x, y = one_batch(root)
        peer_dir = os.path.join(root, "peer")
        snapshots.PeerPublisher(peer_dir).publish(1, named_weights(build_dnn(seed=1)))
        models, sources = {}, []
        for mode in FLAGS.modes:
            jit = mode == "xla"
            models[f"plain, {mode}"] = plain(jit)
            models[f"codistilled, {mode}"], source = codistilled(peer_dir, jit)
            sources.append(source)
            for rows in step_timing.distilled_rows(FLAGS.batch_size):
                models[f"codistilled, {rows}/{FLAGS.batch_size} rows, {mode}"], source = \
                    codistilled(peer_dir, jit, rows)
                sources.append(source)
        compile_s, times, cpu_times = step_timing.time_variants(
            models, x, y, FLAGS.steps, FLAGS.repeats)
        for source in sources:
            source.close()
    print(f"Criteo DNN {','.join(FLAGS.hidden_units)}, {FLAGS.hash_buckets} buckets x 26, "
          f"embedding {FLAGS.embedding_dim}, batch {FLAGS.batch_size}; {FLAGS.repeats} "
          f"alternating blocks of {FLAGS.steps} steps; TF {tf.__version__}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end")
    step_timing.print_tables(compile_s, times, cpu_times, FLAGS.batch_size, "examples")


if __name__ == "__main__":
    app.run(main)
