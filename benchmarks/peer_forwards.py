"""Several peers' teacher forwards: one forward per peer against one batched over stacked weights.

    python benchmarks/peer_forwards.py [--peers=1,2,3 --repeats=5]

With N groups each student runs N-1 frozen teacher forwards on its batch. The alternative
to N-1 separate forwards is one forward over the peers' weights stacked on a leading axis
(batched matmuls: [P, rows, in] x [P, in, out]); the batch itself cannot be concatenated,
since every peer has its own weights. Both variants are the LM's forward structure (input
projection of every step at once, a recurrent loop of --seq_len steps with LSTM gates, the
output softmax's logits), compiled with XLA, timed in alternating blocks of process CPU
time. Ratios are to one peer's forward.
"""

import statistics
import time

import tensorflow as tf
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("peers", ["1", "2", "3"], "Peer counts to time.")
flags.DEFINE_integer("repeats", 5, "Timed blocks per variant.")
flags.DEFINE_integer("steps", 5, "Forwards per block.")
flags.DEFINE_integer("batch_size", 32, "Streams per batch.")
flags.DEFINE_integer("seq_len", 32, "Tokens per row.")
flags.DEFINE_integer("embedding_dim", 128, "Input size.")
flags.DEFINE_integer("units", 256, "LSTM units.")
flags.DEFINE_integer("vocab_size", 4000, "Output logits.")


def _lstm_forward(inputs, kernel, recurrent, output, contract):
    """Logits of one LSTM layer; ``contract`` is matmul (one peer) or a batched einsum."""
    b, t, u = FLAGS.batch_size, FLAGS.seq_len, FLAGS.units
    lead = inputs.shape[:-2]
    gates_in = tf.reshape(contract(inputs, kernel), (*lead, b, t, 4 * u))
    h = c = tf.zeros((*lead, b, u))
    outputs = []
    for step in range(t):
        z = gates_in[..., step, :] + contract(h, recurrent)
        i, f, g, o = tf.split(z, 4, axis=-1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        outputs.append(h)
    states = tf.reshape(tf.stack(outputs, axis=-2), (*lead, b * t, u))
    return tf.reduce_sum(contract(states, output))


def variant(peers: int, batched: bool):
    rows = FLAGS.batch_size * FLAGS.seq_len
    e, u, v = FLAGS.embedding_dim, FLAGS.units, FLAGS.vocab_size
    inputs = tf.random.normal((peers, rows, e))
    kernel, recurrent = tf.random.normal((peers, e, 4 * u)), tf.random.normal((peers, u, 4 * u))
    output = tf.random.normal((peers, u, v)) * 0.01

    @tf.function(jit_compile=True)
    def forwards():
        if batched:
            return _lstm_forward(inputs, kernel, recurrent, output,
                                 lambda a, w: tf.einsum("p...i,pio->p...o", a, w))
        return tf.add_n([_lstm_forward(inputs[p], kernel[p], recurrent[p], output[p],
                                       tf.matmul) for p in range(peers)])

    forwards()  # compile outside the timing
    return forwards


def main(argv):
    del argv
    counts = [int(p) for p in FLAGS.peers]
    variants = {f"{p} peer{'s' if p > 1 else ''}, {kind}": variant(p, kind == "batched")
                for p in counts for kind in ("separate", "batched") if p > 1 or kind == "separate"}
    blocks = {name: [] for name in variants}
    for _ in range(FLAGS.repeats):
        for name, forwards in variants.items():
            start = time.process_time()
            for _ in range(FLAGS.steps):
                forwards().numpy()
            blocks[name].append((time.process_time() - start) / FLAGS.steps)
    one = statistics.median(blocks[f"{counts[0]} peer{'s' if counts[0] > 1 else ''}, separate"])
    print(f"teacher forwards, XLA, process CPU time; {FLAGS.repeats} alternating blocks of "
          f"{FLAGS.steps}; ratios to {counts[0]} peer(s) separate ({1000 * one:.1f} ms)")
    print(f"{'variant':<24} {'median':>7} {'ms':>7} {'spread':>7}")
    for name, values in blocks.items():
        median = statistics.median(values)
        print(f"{name:<24} {median / one:>7.2f} {1000 * median:>7.1f} "
              f"{(max(values) - min(values)) / median:>6.0%}")


if __name__ == "__main__":
    app.run(main)
