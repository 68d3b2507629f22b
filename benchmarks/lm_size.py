"""The benchmarked LM's size, as flags shared by the step-cost benchmarks."""

from absl import flags

from tf_codistill.models.lstm_lm import LanguageModelConfig, StatefulLanguageModel

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 32, "Streams per batch.")
flags.DEFINE_integer("seq_len", 32, "Tokens per row.")
flags.DEFINE_integer("units", 256, "LSTM units.")
flags.DEFINE_integer("embedding_dim", 128, "Embedding size.")
flags.DEFINE_integer("vocab_size", 4000, "Vocabulary size.")
flags.DEFINE_bool("layer_norm", True, "Layer-normalized cells (stock keras LSTM if False).")


def build_lm(batch_size: int | None = None) -> StatefulLanguageModel:
    """The LM of the size the flags give, under the current Keras policy; ``batch_size``
    streams (default --batch_size), e.g. a teacher copy's distilled rows."""
    config = LanguageModelConfig(vocab_size=FLAGS.vocab_size, embedding_dim=FLAGS.embedding_dim,
                                 units=FLAGS.units, layer_norm=FLAGS.layer_norm)
    return StatefulLanguageModel(config, batch_size or FLAGS.batch_size)
