"""One worker of a MultiWorkerMirroredStrategy group, started by the tests.

Run as ``python -m tests.helpers.mwms_worker OUT.npz`` with TF_CONFIG set; it
fits a CodistillModel with an in-process peer and writes the final weights.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

import tf_codistill as tc  # noqa: E402
from tests.helpers import tiny_models as tiny  # noqa: E402


def main(out_path):
    strategy = tc.get_strategy("multi_worker")
    with strategy.scope():
        model = tc.CodistillModel(tiny.classifier(1), tc.InProcessPeers([tiny.classifier(2)]),
                                  burn_in_steps=2)
        model.compile(keras.optimizers.SGD(0.1))
    dataset = tf.data.Dataset.from_tensor_slices(tiny.classification_data(64)).batch(16)
    history = model.fit(dataset.repeat(), epochs=2, steps_per_epoch=4, verbose=0)
    np.savez(out_path, *[w.numpy() for w in model.trainable_weights],
             loss=np.array(history.history["loss"]),
             replicas=np.array(strategy.num_replicas_in_sync))


if __name__ == "__main__":
    main(sys.argv[1])
