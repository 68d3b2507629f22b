"""Codistill your own Keras model: one group per process, exchanging checkpoints only.

    python examples/own_model.py --model_dir=/tmp/own --group=0 &
    python examples/own_model.py --model_dir=/tmp/own --group=1

Each group trains its own copy on its own half of the data and distills from the
other group's published snapshots; rerun a command to resume it (docs/own-model.md).
"""

import argparse

import numpy as np
import tensorflow as tf
import tf_keras as keras

import tf_codistill as tc


def make_model():
    """Your model: anything that maps a batch of inputs to logits."""
    return keras.Sequential([keras.layers.Dense(64, activation="relu", input_shape=(16,)),
                             keras.layers.Dense(64, activation="relu"),
                             keras.layers.Dense(4)])


def make_dataset(group, seed):
    """Your data: 4 classes set by the signs of two features; group k reads half k."""
    x = np.random.default_rng(0).normal(size=(8192, 16)).astype("float32")
    y = (x[:, 0] > 0) + 2 * (x[:, 1] > 0)
    rows = slice(group, None, 2)
    return (tf.data.Dataset.from_tensor_slices((x[rows], y[rows]))
            .shuffle(4096, seed=seed).repeat().batch(64))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--group", type=int, required=True)
    parser.add_argument("--num_groups", type=int, default=2)
    parser.add_argument("--train_steps", type=int, default=2000)
    parser.add_argument("--strategy", default="default",
                        choices=["default", "mirrored", "multi_worker"])
    args = parser.parse_args()

    strategy = tc.get_strategy(args.strategy)
    with tc.Group(args.model_dir, args.group, args.num_groups, strategy=strategy,
                  train_steps=args.train_steps, reload_interval=100,
                  steps_per_loop=500) as group:
        with strategy.scope():
            model = tc.CodistillModel(make_model(), group.teacher(make_model))
            model.compile(keras.optimizers.Adam(1e-3), metrics=["accuracy"])
        metrics = group.fit(model, make_dataset(args.group, group.seed))
    for peer in metrics["peers"]:
        print(f"group {args.group} holds {peer['directory']} at its step {peer['step']}")


if __name__ == "__main__":
    main()
