"""What a codistillation step costs against a plain step, graph mode and XLA, in one run.

    python benchmarks/step_cost.py                      # CPU LM: 2 x LSTM 256, batch 32 x 32
    python benchmarks/step_cost.py --units=1024 --embedding_dim=256 --vocab_size=24006 \\
        --batch_size=4 --steps=3 --repeats=5             # the paper's LM size, a small batch

Variants (same model sizes and batch; every model built once, traced outside the timing):
  plain               a tf_keras LM compiled with its loss (no wrapper)
  codistilled <p>     CodistillModel with a checkpoint peer loaded from a real published
                      snapshot at teacher precision p (int8: int8 storage and transfer,
                      bfloat16 compute)
  burn-in             the same with a float32 peer loaded, during burn_in_steps
  no peer yet         a checkpoint peer that has published nothing
  student <policy>    plain LM under a Keras mixed-precision policy (--mixed_policies)
  x k peers           --num_peers=1,2,3: k checkpoint peers (N = k + 1 groups), k forwards
  k/B rows            --distill_fractions=0.25,...: the first teacher precision, distilling
                      (and running the teacher on) that share of the batch rows
each in graph mode and with jit_compile=True (--modes). Timed blocks of --steps steps cycle
through all variants --repeats times, so machine noise hits all alike. Every figure is a
ratio to the fastest plain step (the lower median of plain graph / plain XLA); min and
median are over blocks, spread is (max - min) / median of the blocks.
"""

import os
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tf_codistill.utils.allocator import cap_malloc_arenas  # noqa: E402

cap_malloc_arenas()  # as the train command does, before TensorFlow starts its threads

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from absl import app, flags  # noqa: E402

import step_timing  # noqa: E402  (benchmarks/step_timing.py: alternating timed blocks)

from tf_codistill.core.model import CodistillModel  # noqa: E402
from tf_codistill.exchange import snapshots  # noqa: E402
from tf_codistill.exchange.peers import (CheckpointPeers, build_teacher_copy,  # noqa: E402
                                         named_weights)
from lm_size import build_lm  # noqa: E402  (benchmarks/lm_size.py: the LM's size flags)
from tf_codistill.config import TrainerConfig  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 10, "Steps per timed block.")
flags.DEFINE_integer("repeats", 7, "Timed blocks per variant.")
flags.DEFINE_list("precisions", ["float32", "bfloat16", "int8"], "Teacher precisions.")
flags.DEFINE_list("modes", ["graph", "xla"], "graph and/or xla.")
flags.DEFINE_list("mixed_policies", ["mixed_bfloat16"],
                  "Keras policies of extra plain-student variants (empty: none).")
flags.DEFINE_list("num_peers", ["1"], "Checkpoint peers per codistilled variant (N-1 of N "
                  "groups); above 1 only the first of --precisions.")
flags.DEFINE_bool("idle_teacher_variants", True, "Add the burn-in and no-peer-yet variants.")
flags.DEFINE_list("noise_scale_intervals", [str(TrainerConfig.noise_scale_interval)],
                  "Gradient noise scale measured every K steps (one replica): a group without "
                  "peers and the first of --precisions' codistilled group, each with and "
                  "without it, in adjacent blocks; --steps should be a multiple of K.")


def _zeros():
    return tf.zeros((FLAGS.batch_size, FLAGS.seq_len), tf.int32)


def plain(jit, policy=None):
    previous = keras.mixed_precision.global_policy()
    if policy:
        keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_lm()
    finally:
        keras.mixed_precision.set_global_policy(previous)
    optimizer = keras.optimizers.Adam()
    if policy == "mixed_float16":
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit)
    return model


def alone(jit, noise_scale_interval=None):
    """CodistillModel without a teacher: a one-group run of the train command."""
    model = CodistillModel(build_lm(), noise_scale_interval=noise_scale_interval)
    model.compile(keras.optimizers.Adam(), jit_compile=jit)
    return model


def codistilled(peer_dir, precision, jit, burn_in_steps=0, published=True, num_peers=1,
                distill_rows=None, noise_scale_interval=None):
    rows = distill_rows or FLAGS.batch_size
    peers = CheckpointPeers([peer_dir] * num_peers,
                            lambda: build_teacher_copy(lambda: build_lm(rows), precision),
                            poll_interval_s=3600)
    for copy in peers.frozen_models:
        copy(_zeros()[:rows])
    peers.poller.poll_once()
    assert peers.swap_in_new_weights(0) == int(published) * num_peers
    model = CodistillModel(build_lm(), peers, burn_in_steps=burn_in_steps,
                           distill_rows=distill_rows, noise_scale_interval=noise_scale_interval)
    model.compile(keras.optimizers.Adam(), jit_compile=jit)
    return model, peers


def main(argv):
    del argv
    rng = np.random.RandomState(0)
    shape = (FLAGS.batch_size, FLAGS.seq_len)
    x = tf.constant(rng.randint(0, FLAGS.vocab_size, shape), tf.int32)
    y = tf.constant(rng.randint(0, FLAGS.vocab_size, shape), tf.int32)
    peer = build_lm()
    peer(x)
    models, sources, pairs = {}, [], []
    with tempfile.TemporaryDirectory() as root:
        directories = {}
        for precision in dict.fromkeys(FLAGS.precisions + ["float32"]):
            directories[precision] = os.path.join(root, precision)
            snapshots.PeerPublisher(directories[precision], precision=precision).publish(
                1, named_weights(peer))
        empty = os.path.join(root, "nobody")
        for mode in FLAGS.modes:
            jit = mode == "xla"
            models[f"plain, {mode}"] = plain(jit)
            for policy in FLAGS.mixed_policies:
                models[f"plain student {policy}, {mode}"] = plain(jit, policy)
            for precision in FLAGS.precisions:
                for count in map(int, FLAGS.num_peers):
                    if count > 1 and precision != FLAGS.precisions[0]:
                        continue
                    label = "" if count == 1 else f" x {count} peers"
                    models[f"codistilled {precision} teacher{label}, {mode}"], source = \
                        codistilled(directories[precision], precision, jit, num_peers=count)
                    sources.append(source)
            for rows in step_timing.distilled_rows(FLAGS.batch_size):
                precision = FLAGS.precisions[0]
                models[f"codistilled {precision} teacher, {rows}/{FLAGS.batch_size} rows, "
                       f"{mode}"], source = codistilled(directories[precision], precision,
                                                        jit, distill_rows=rows)
                sources.append(source)
            precision = FLAGS.precisions[0]
            for interval in map(int, FLAGS.noise_scale_intervals):
                builds = {"one group": lambda k: (alone(jit, k), None),
                          f"codistilled {precision} teacher": lambda k: codistilled(
                              directories[precision], precision, jit, noise_scale_interval=k)}
                for kind, build in builds.items():
                    reference = f"{kind}, {mode}"
                    if reference not in models:
                        models[reference], source = build(None)
                        sources.append(source)
                    models[reference] = models.pop(reference)  # adjacent blocks
                    variant = f"{kind}, noise scale every {interval}, {mode}"
                    models[variant], source = build(interval)
                    sources.append(source)
                    pairs.append((variant, reference))
            if not FLAGS.idle_teacher_variants:
                continue
            models[f"burn-in (fp32 peer loaded), {mode}"], source = codistilled(
                directories["float32"], "float32", jit, burn_in_steps=10 ** 9)
            sources.append(source)
            models[f"no peer published yet, {mode}"], source = codistilled(
                empty, "float32", jit, published=False)
            sources.append(source)
        compile_s, times, cpu_times = step_timing.time_variants(
            models, x, y, FLAGS.steps, FLAGS.repeats)
        for source in filter(None, sources):
            source.close()
    print(f"LM 2 x LSTM {FLAGS.units} (layer_norm={FLAGS.layer_norm}), embedding "
          f"{FLAGS.embedding_dim}, vocab {FLAGS.vocab_size}, batch {FLAGS.batch_size} x "
          f"{FLAGS.seq_len}; {FLAGS.repeats} alternating blocks of {FLAGS.steps} steps; "
          f"TF {tf.__version__}; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs at the end")
    step_timing.print_tables(compile_s, times, cpu_times, FLAGS.batch_size * FLAGS.seq_len,
                             "tokens")
    if pairs:
        step_timing.print_paired_ratios("gradient noise scale telemetry", times, cpu_times,
                                        pairs)


if __name__ == "__main__":
    app.run(main)
