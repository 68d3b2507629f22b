"""Tiny models and data shared by tests and the worker processes they start."""

import numpy as np
import tf_keras

NUM_CLASSES = 3
VOCAB = 13
SEQ_LEN = 6


FLAVOURS = ("tf_keras", "keras3")


def keras_of(flavour="tf_keras"):
    """The Keras module of a flavour: tf_keras, or Keras 3 (TensorFlow backend)."""
    if flavour == "keras3":
        import keras
        return keras
    return tf_keras


def classifier(seed, width=8, flavour="tf_keras"):
    """A softmax classifier over 4 features, seeded for identical copies."""
    keras = keras_of(flavour)
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(width, activation="tanh"),
        keras.layers.Dense(NUM_CLASSES),
    ])


def codistilled_classifier(teacher, jit_compile=False, **model_kwargs):
    """CodistillModel over classifier(1) and ``teacher``, compiled with SGD(0.1)."""
    import tf_codistill as tc

    model = tc.CodistillModel(classifier(1), teacher, **model_kwargs)
    model.compile(tf_keras.optimizers.SGD(0.1), jit_compile=jit_compile)
    return model


def logistic(seed, flavour="tf_keras"):
    keras = keras_of(flavour)
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(8, activation="relu"),
        keras.layers.Dense(1),
    ])


def token_tagger(seed, flavour="tf_keras"):
    """Per-token logits over a small vocabulary: a sequence output."""
    keras = keras_of(flavour)
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((SEQ_LEN,), dtype="int32"),
        keras.layers.Embedding(VOCAB, 8),
        keras.layers.Dense(VOCAB),
    ])


def classification_data(n=64, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.randn(n, 4).astype("float32")
    y = ((x[:, 0] > 0).astype("int32") + (x[:, 1] > 0)).astype("int32")
    return x, y


def binary_data(n=64, seed=0):
    x, y = classification_data(n, seed)
    return x, (y > 0).astype("float32")[:, None]


def sequence_data(n=32, seed=0):
    """Next-token targets with a padding mask that zeroes some positions."""
    rng = np.random.RandomState(seed)
    tokens = rng.randint(0, VOCAB, size=(n, SEQ_LEN + 1)).astype("int32")
    lengths = rng.randint(2, SEQ_LEN + 1, size=n)
    mask = (np.arange(SEQ_LEN)[None, :] < lengths[:, None]).astype("float32")
    return tokens[:, :-1], tokens[:, 1:], mask


def weights_of(model):
    return [w.copy() for w in model.get_weights()]
