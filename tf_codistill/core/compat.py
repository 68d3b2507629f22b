"""Guards for the Keras flavour: this package runs on tf_keras (the Keras 2 API).

Keras 3 ``model.fit`` fails under MultiWorkerMirroredStrategy on TF 2.21
(keras-team/keras#20585), so a Keras 3 model is refused with a message that
says how to build it with tf_keras instead.
"""

from __future__ import annotations

import tf_keras as keras

KERAS3_HINT = ("build it with tf_keras (`import tf_keras as keras`), or set "
               "TF_USE_LEGACY_KERAS=1 before importing tensorflow and use tf.keras")


def require_tf_keras_model(model, argument: str) -> None:
    """Raises TypeError unless ``model`` is a tf_keras Model."""
    if isinstance(model, keras.Model):
        return
    module = type(model).__module__
    if module.startswith("keras"):
        raise TypeError(f"{argument} is a Keras 3 model ({type(model).__name__}); "
                        f"tf_codistill needs a tf_keras model: {KERAS3_HINT}.")
    raise TypeError(f"{argument} must be a tf_keras Model, got "
                    f"{type(model).__module__}.{type(model).__name__}.")
