"""Step time of a CodistillModel with distillation off vs the same plain Keras model.

    python benchmarks/wrapper_overhead.py

Both train the same small MLP on the same batches in one process; the timed
loops alternate so that machine noise hits both alike. Also prints, for
reference, the cost of a fixed teacher and of a co-trained in-process peer.
"""

import os
import statistics
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from absl import app, flags  # noqa: E402

import tf_codistill as tc  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 256, "Examples per step.")
flags.DEFINE_integer("hidden_units", 512, "Width of the two hidden layers.")
flags.DEFINE_integer("steps", 50, "Steps per timed block.")
flags.DEFINE_integer("repeats", 7, "Timed blocks per model (median reported).")


def mlp(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.layers.Dense(FLAGS.hidden_units, activation="relu", input_shape=(64,)),
        keras.layers.Dense(FLAGS.hidden_units, activation="relu"),
        keras.layers.Dense(100),
    ])


def plain_model():
    model = mlp(1)
    model.compile(keras.optimizers.Adam(),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def codistill_model(teacher):
    model = tc.CodistillModel(mlp(1), teacher)
    model.compile(keras.optimizers.Adam())
    return model


def step_time(model, dataset):
    """Seconds per step of one ``fit`` over ``steps`` steps, as training runs them.

    ``fit`` fetches the logged values once per epoch; ``train_on_batch`` would
    fetch every metric every step and so charge the wrapper for its extra
    loss trackers.
    """
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=FLAGS.steps, epochs=1, verbose=0)
    return (time.perf_counter() - start) / FLAGS.steps


def main(argv):
    del argv
    rng = np.random.RandomState(0)
    x = rng.randn(FLAGS.batch_size, 64).astype("float32")
    y = rng.randint(0, 100, FLAGS.batch_size).astype("int32")
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    models = {
        "plain keras": plain_model(),
        "codistill, distillation off": codistill_model(None),
        "codistill, fixed teacher": codistill_model(tc.FixedTeacher(mlp(2))),
        "codistill, 1 in-process peer": codistill_model(tc.InProcessPeers([mlp(3)])),
    }
    for model in models.values():
        step_time(model, dataset)  # trace and warm up outside the timing
    times = {name: [] for name in models}
    for _ in range(FLAGS.repeats):
        for name, model in models.items():
            times[name].append(step_time(model, dataset))
    base = statistics.median(times["plain keras"])
    print(f"batch {FLAGS.batch_size}, MLP 64-{FLAGS.hidden_units}-{FLAGS.hidden_units}-100, "
          f"median of {FLAGS.repeats} blocks of {FLAGS.steps} steps")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<30} {median * 1e3:8.3f} ms/step   ratio to plain {median / base:5.3f}")


if __name__ == "__main__":
    app.run(main)
