"""Why a 16-bit teacher is (not) cheaper here: the teacher's forward pass alone, per policy.

    python benchmarks/teacher_forward.py

A frozen teacher copy of the CPU LM (2 x LSTM 256, batch 32 x 32), forward only, under
  float32          float32 variables and compute
  mixed_bfloat16   float32 variables, bfloat16 compute: every variable read inside the
                   RNN loop is a cast (what --teacher_precision=bfloat16/int8 built before)
  bfloat16         bfloat16 variables and compute: no casts (a frozen copy never trains;
                   what a bfloat16/int8 teacher copy is now)
in graph mode and under XLA, plus the two matmul shapes that dominate (one recurrent step,
the output layer) in float32 and bfloat16. Timed blocks alternate; figures are process
CPU time (all threads, less sensitive than wall-clock to other jobs on a shared VM), the
median over blocks as a ratio to the float32 graph forward (or float32 matmul), with the
spread (max - min) / median.
"""

import os
import statistics
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from absl import app, flags  # noqa: E402

from lm_size import build_lm  # noqa: E402  (benchmarks/lm_size.py: the LM's size flags)

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 10, "Calls per timed block.")
flags.DEFINE_integer("repeats", 7, "Timed blocks per variant.")

POLICIES = ("float32", "mixed_bfloat16", "bfloat16")


def forward_fn(policy, jit):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_lm()
    finally:
        keras.mixed_precision.set_global_policy(previous)
    model.trainable = False

    @tf.function(jit_compile=jit)
    def forward(x):
        return tf.cast(model(x, training=False), tf.float32)
    return forward


def matmul_fn(m, k, n, dtype):
    a = tf.Variable(tf.cast(tf.random.normal((m, k)), dtype))
    b = tf.Variable(tf.cast(tf.random.normal((k, n)) * 0.05, dtype))

    @tf.function
    def run(_):
        out = a
        for _ in range(8):  # 8 products per call: the RNN runs many small ones
            out = tf.matmul(out[:, :k], b)
        return out
    return run


def timed(fn, x):
    """Process CPU seconds per call (all threads): the VM is shared with other jobs."""
    start = time.process_time()
    for _ in range(FLAGS.steps):
        out = fn(x)
    out.numpy()
    return (time.process_time() - start) / FLAGS.steps


def report(title, variants, base_name, x):
    for fn in variants.values():
        fn(x).numpy()
        fn(x).numpy()
    times = {name: [] for name in variants}
    for _ in range(FLAGS.repeats):
        for name, fn in variants.items():
            times[name].append(timed(fn, x))
    base = statistics.median(times[base_name])
    print(title)
    print(f"  {'variant':<36} {'ratio':>6} {'min':>6} {'spread':>7} {'CPU ms':>8}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:<36} {median / base:6.3f} {min(samples) / base:6.3f} "
              f"{(max(samples) - min(samples)) / median:7.1%} {median * 1e3:8.2f}")


def main(argv):
    del argv
    rng = np.random.RandomState(0)
    x = tf.constant(rng.randint(0, FLAGS.vocab_size, (FLAGS.batch_size, FLAGS.seq_len)),
                    tf.int32)
    print(f"LM 2 x LSTM {FLAGS.units}, embedding {FLAGS.embedding_dim}, vocab "
          f"{FLAGS.vocab_size}, batch {FLAGS.batch_size} x {FLAGS.seq_len}; "
          f"{FLAGS.repeats} alternating blocks of {FLAGS.steps} calls")
    forwards = {f"forward {policy}, {mode}": forward_fn(policy, mode == "xla")
                for mode in ("graph", "xla") for policy in POLICIES}
    report("teacher forward pass", forwards, "forward float32, graph", x)
    b, u, v = FLAGS.batch_size, FLAGS.units, FLAGS.vocab_size
    t = FLAGS.seq_len
    for name, (m, k, n) in {"recurrent step": (b, u, 4 * u),
                            "output layer": (b * t, u, v)}.items():
        matmuls = {f"{name} [{m},{k}]x[{k},{n}] {dtype.name}": matmul_fn(m, k, n, dtype)
                   for dtype in (tf.float32, tf.bfloat16)}
        report(f"matmul, {name} (8 per call)", matmuls, next(iter(matmuls)), x)


if __name__ == "__main__":
    app.run(main)
