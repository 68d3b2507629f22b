"""The paper's Common Crawl language model: stacked LSTMs whose state never resets.

Batches are 32-token windows of B continuous document streams; the hidden state
of every layer is carried from one batch to the next and never reset, so the
model must learn to use the end-of-document token to reset itself (Anil et al.
2018, section 3).

tf_keras refuses ``stateful=True`` RNNs under tf.distribute, so the state lives
in non-trainable ``ON_READ`` variables created in the strategy's scope: each
replica keeps the state of its own streams, fed back as ``initial_state``.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
import tf_keras as keras

from tf_codistill.config import AT_LEAST_1, knob
from tf_codistill.core.carried_state import CarriesState


@dataclasses.dataclass(frozen=True)
class LSTMArchitecture:
    """The stacked LSTM's shape, declared once for every task that trains it (the paper's
    defaults; ``config.with_defaults`` gives a task its own; a task redeclares
    ``vocab_size`` when its vocabulary means something else)."""

    vocab_size: int = knob(24006, "Vocabulary size.", valid=AT_LEAST_1)
    embedding_dim: int = knob(256, "Input embedding size.", valid=AT_LEAST_1)
    units: int = knob(1024, "LSTM units per layer.", valid=AT_LEAST_1)
    num_layers: int = knob(2, "LSTM layers.", valid=AT_LEAST_1)
    layer_norm: bool = knob(True, "Layer-normalized LSTM cells.")


@dataclasses.dataclass(frozen=True)
class LanguageModelConfig(LSTMArchitecture):
    """Everything ``StatefulLanguageModel`` is built from."""

    @classmethod
    def of(cls, architecture: LSTMArchitecture, vocab_size: int) -> "LanguageModelConfig":
        """The model config of a task's section (an ``LSTMArchitecture``) with ``vocab_size``."""
        fields = {f.name: getattr(architecture, f.name)
                  for f in dataclasses.fields(LSTMArchitecture)}
        return cls(**{**fields, "vocab_size": vocab_size})


@keras.utils.register_keras_serializable(package="tf_codistill")
class Orthogonal16(keras.initializers.Orthogonal):
    """Orthogonal initialization for any float dtype: drawn in float32, then cast.

    tf's QR decomposition has no bfloat16 kernel, so a copy built under a pure
    bfloat16 policy (a frozen bf16 teacher) could not initialize its recurrent
    kernels; float32 models get exactly the values of ``Orthogonal``.
    """

    def __call__(self, shape, dtype=None, **kwargs):
        dtype = tf.as_dtype(dtype or keras.backend.floatx())
        return tf.cast(super().__call__(shape, dtype=tf.float32, **kwargs), dtype)


class LayerNormLSTMCell(keras.layers.LSTMCell):
    """LSTM cell with layer normalization (Ba et al. 2016), fed pre-projected inputs.

    The input and recurrent projections of the four gates are normalized
    separately, and so is the cell state before the output nonlinearity. The
    input half does not depend on the state, so ``LayerNormLSTM`` computes it for
    every time step at once (``project``) and the cell, run once per step, only
    adds the recurrent half: one [B*T, E] x [E, 4U] matmul instead of T small ones.
    """

    def __init__(self, units, **kwargs):
        super().__init__(units, **kwargs)
        self.input_norm = keras.layers.LayerNormalization(name="input_norm")
        self.recurrent_norm = keras.layers.LayerNormalization(name="recurrent_norm")
        self.cell_norm = keras.layers.LayerNormalization(name="cell_norm")

    def build(self, input_shape):
        super().build(input_shape)
        self.input_norm.build((None, 4 * self.units))
        self.recurrent_norm.build((None, 4 * self.units))
        self.cell_norm.build((None, self.units))

    def project(self, inputs):
        """The normalized input half of the gates, [..., E] -> [..., 4U], as one 2-D matmul.

        Flattened to rows because the norm layers were built for [rows, 4U] (their
        axis is fixed at build time).
        """
        rows = tf.reshape(inputs, (-1, tf.shape(inputs)[-1]))
        z = self.input_norm(tf.matmul(rows, self.kernel))
        if self.use_bias:
            z += self.bias
        z = tf.reshape(z, tf.concat([tf.shape(inputs)[:-1], [4 * self.units]], axis=0))
        z.set_shape(inputs.shape[:-1].concatenate([4 * self.units]))
        return z

    def call(self, projected_inputs, states, training=None):
        h_prev, c_prev = states
        z = projected_inputs + self.recurrent_norm(tf.matmul(h_prev, self.recurrent_kernel))
        i, f, g, o = tf.split(z, 4, axis=-1)
        c = tf.sigmoid(f) * c_prev + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(self.cell_norm(c))
        return h, [h, c]


class LayerNormLSTM(keras.layers.RNN):
    """A layer-normalized LSTM over [B, T, E] inputs: projects them once, then loops.

    The layer's input spec and its cell's weights are those of the raw inputs, so
    checkpoints name the same variables as a plain ``RNN(LayerNormLSTMCell)``.
    """

    def __init__(self, units, name=None, **cell_kwargs):
        super().__init__(LayerNormLSTMCell(units, **cell_kwargs), return_sequences=True,
                         return_state=True, name=name)

    def call(self, inputs, initial_state=None, training=None, **kwargs):
        return super().call(self.cell.project(inputs), initial_state=initial_state,
                            training=training, **kwargs)


class StatefulLanguageModel(keras.Model, CarriesState):
    """Embedding -> LSTM x num_layers -> logits over the vocabulary, per token.

    Args:
      config: sizes of the model.
      batch_size: rows per replica; the carried state has one row per stream.
      seed: fixes every initializer (each variable draws from its own seed
        derived from it), whatever else the process drew before; None leaves
        them to the global random state.
    """

    def __init__(self, config: LanguageModelConfig, batch_size: int, seed: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.batch_size = batch_size
        self.seed = seed
        self.embedding = keras.layers.Embedding(
            config.vocab_size, config.embedding_dim,
            embeddings_initializer=keras.initializers.RandomUniform(
                -0.05, 0.05, seed=self._seed(0)))
        self.rnn_layers = [self._recurrent_layer(index) for index in range(config.num_layers)]
        self.logits = keras.layers.Dense(
            config.vocab_size, name="logits",
            kernel_initializer=keras.initializers.GlorotUniform(seed=self._seed(1)))
        self.states = [[self._state_variable(f"layer{index}_{part}") for part in ("h", "c")]
                       for index in range(config.num_layers)]

    def _seed(self, index):
        """A distinct seed per initializer: a seeded initializer repeats its values."""
        return None if self.seed is None else self.seed * 100 + index

    def _recurrent_layer(self, index):
        units = self.config.units
        initializers = dict(
            kernel_initializer=keras.initializers.GlorotUniform(seed=self._seed(2 + 2 * index)),
            recurrent_initializer=Orthogonal16(seed=self._seed(3 + 2 * index)))
        if self.config.layer_norm:
            return LayerNormLSTM(units, name=f"lstm{index}", **initializers)
        return keras.layers.LSTM(units, return_sequences=True, return_state=True,
                                 name=f"lstm{index}", **initializers)

    def _state_variable(self, name):
        return tf.Variable(tf.zeros((self.batch_size, self.config.units)), trainable=False,
                           name=name, synchronization=tf.VariableSynchronization.ON_READ,
                           aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def call(self, tokens, training=None):
        x = self.embedding(tokens)
        for layer, (h, c) in zip(self.rnn_layers, self.states):
            # The state stays float32; a mixed-precision copy computes in its own dtype.
            initial = [tf.cast(h, x.dtype), tf.cast(c, x.dtype)]
            x, h_last, c_last = layer(x, initial_state=initial, training=training)
            h.assign(tf.cast(h_last, h.dtype))
            c.assign(tf.cast(c_last, c.dtype))
        return self.logits(x)

    @property
    def carried_state_variables(self) -> list[tf.Variable]:
        """Per-stream state: kept in checkpoints, never sent to peers."""
        return [variable for pair in self.states for variable in pair]

    def reset_states(self):
        """Zeroes the carried state, e.g. before reading a new set of streams."""
        for pair in self.states:
            for variable in pair:
                variable.assign(tf.zeros_like(variable))

    def get_config(self):
        return {"config": dataclasses.asdict(self.config), "batch_size": self.batch_size,
                "seed": self.seed}
