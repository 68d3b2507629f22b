"""One worker of a two-worker all-reduce of a model's gradients, timed (benchmarks/interconnect.py).

    TF_CONFIG=... python -m experiments.harness.allreduce_worker --shapes=SHAPES_JSON

Builds MultiWorkerMirroredStrategy from TF_CONFIG and float32 tensors of the given shapes
(the student's trainable variables), then reads a count N per stdin line, runs N all-reduces
(SUM, in a replica context, as tf_keras aggregates gradients) and answers one JSON line with
the seconds of each. Both workers must be sent the same counts. Without the training step's
compute around it, what it times is the collective itself: the link and the protocol.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", required=True, help="JSON list of variable shapes.")
    args = parser.parse_args(argv)
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    tensors = [tf.random.stateless_normal(shape, seed=[i, 0])
               for i, shape in enumerate(json.loads(args.shapes))]

    @tf.function
    def all_reduce():
        def replica_fn():
            context = tf.distribute.get_replica_context()
            return context.all_reduce(tf.distribute.ReduceOp.SUM, tensors)
        return strategy.run(replica_fn)

    all_reduce()  # trace, and the collective's first handshake
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        seconds = []
        for _ in range(int(line)):
            start = time.perf_counter()
            result = all_reduce()
            float(tf.reduce_sum(result[0]))  # wait for it
            seconds.append(time.perf_counter() - start)
        print(json.dumps({"seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
