"""Bytes a group reads from one peer per training step vs what ring all-reduce moves per step.

Publishes random weights with the shapes of two LSTM language models to a temp directory at
each teacher precision, measures the published checkpoint size from the manifest, and prints
  peer bytes per step = published size / reload interval  (one peer; n groups read n - 1 peers)
  all-reduce bytes per step = 2 x parameters x 4 (float32 gradients, per worker, ring)
side by side with their ratio, plus the steady-state publish and verified-read times.

  python benchmarks/exchange_bytes.py [--reload_interval=50] [--precisions=float32,int8]
"""
import json
import os
import tempfile
import time

from absl import app, flags, logging
import numpy as np

from tf_codistill.exchange.snapshots import MANIFEST_NAME, PeerPublisher, read_latest

_RELOAD_INTERVAL = flags.DEFINE_integer("reload_interval", 50, "Steps between peer reloads.")
_PRECISIONS = flags.DEFINE_list("precisions", ["float32", "bfloat16", "int8"],
                                "Teacher precisions to publish.")


def lstm_lm_shapes(vocab: int, embedding: int, units: int, layers: int) -> dict:
    """Variable shapes of embedding -> stacked keras LSTMs -> softmax."""
    shapes = {"embedding": (vocab, embedding)}
    width = embedding
    for layer in range(layers):
        shapes.update({f"lstm_{layer}/kernel": (width, 4 * units),
                       f"lstm_{layer}/recurrent_kernel": (units, 4 * units),
                       f"lstm_{layer}/bias": (4 * units,)})
        width = units
    shapes.update({"softmax/kernel": (width, vocab), "softmax/bias": (vocab,)})
    return shapes


MODELS = {
    "CPU LM (2 x LSTM 256, emb 256, vocab 4096)": lstm_lm_shapes(4096, 256, 256, 2),
    "paper LM (2 x LSTM 1024, emb 256, vocab 24006)": lstm_lm_shapes(24006, 256, 1024, 2),
}


def published_size(directory: str) -> int:
    with open(os.path.join(directory, MANIFEST_NAME)) as f:
        return sum(file["size"] for file in json.load(f)["checkpoints"][0]["files"])


def measure(shapes: dict, precision: str, root: str) -> dict:
    rng = np.random.default_rng(0)
    weights = [(name, rng.normal(0, 0.05, size=shape).astype(np.float32))
               for name, shape in shapes.items()]
    directory = os.path.join(root, precision)
    publisher = PeerPublisher(directory, precision=precision)
    publisher.publish(1, weights)  # the first publish also builds variables and save functions
    start = time.perf_counter()
    publisher.publish(2, weights)
    publish_s = time.perf_counter() - start
    snapshot = read_latest(directory)
    return {"size": published_size(directory), "publish_s": publish_s,
            "read_s": snapshot.read_seconds}


def report(title: str, shapes: dict, precisions: list[str], interval: int) -> None:
    parameters = sum(int(np.prod(s)) for s in shapes.values())
    allreduce = 2 * parameters * 4
    print(f"\n{title}: {parameters:,} parameters; ring all-reduce moves {allreduce / 1e6:.2f} MB"
          f" per worker per step")
    print(f"{'teacher':>9} {'published MB':>13} {'peer MB/step':>13} {'peer/all-reduce':>16}"
          f" {'publish s':>10} {'read s':>8}")
    with tempfile.TemporaryDirectory() as root:
        for precision in precisions:
            m = measure(shapes, precision, root)
            per_step = m["size"] / interval
            print(f"{precision:>9} {m['size'] / 1e6:13.2f} {per_step / 1e6:13.3f}"
                  f" {per_step / allreduce:16.4f} {m['publish_s']:10.2f} {m['read_s']:8.2f}")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    print(f"Reload interval: {_RELOAD_INTERVAL.value} steps; bytes read from ONE peer.")
    for title, shapes in MODELS.items():
        report(title, shapes, _PRECISIONS.value, _RELOAD_INTERVAL.value)


if __name__ == "__main__":
    app.run(main)
