"""Tokenization inside tf.data, with the ids of the Python tokenizer.

Two engines give the same ids as `Tokenizer.encode` / `.encode_document`:

- "python" (default): the Python tokenizer in tf.py_function. Splitting runs under the GIL
  (regular expressions and str methods, in C); sentencepiece encodes the whole batch on
  `python_threads` C++ threads. Fastest measured here (benchmarks/tokenizer_speed.py).
- "tensorflow_text": tensorflow-text's SentencepieceTokenizer op over the same model proto, the
  splitting rules as the same regular expression in RE2, the U+2581 escape as ragged ops; no
  Python at all, so it scales with parallel map calls, but its sentencepiece is several times
  slower per core than the sentencepiece wheel. Needs `tensorflow-text` matching TensorFlow.

Batch documents before the map (`ds.batch(64).map(encoder.encode_document)`) to amortize the
per-call overhead of either.
"""
from __future__ import annotations

import os

import tensorflow as tf

from tokenizer import specials
from tokenizer.structure import SENTENCE_BOUNDARY_PATTERN

# A byte that valid UTF-8 never contains marks the sentence boundaries found by the regex.
_CUT = b"\xff"
_NOT_UTF8 = ("tokenizer: input text is not valid UTF-8; decode the source with its real "
             "encoding before tokenizing")


class TFTokenizer:
    """`tokenizer.Tokenizer` for tf.data; accepts a scalar or a 1-D batch of strings.

    validate_utf8 applies to the tensorflow_text engine (the python one always checks).
    """

    def __init__(self, tokenizer, engine: str = "python", validate_utf8: bool = True,
                 python_threads: int | None = None):
        if engine not in ("tensorflow_text", "python"):
            raise ValueError(f"engine must be 'tensorflow_text' or 'python', got {engine!r}")
        self._tokenizer = tokenizer
        self._validate = validate_utf8
        self.engine = engine
        self.python_threads = python_threads or len(os.sched_getaffinity(0))
        if engine == "tensorflow_text":
            try:
                import tensorflow_text
            except ImportError as error:
                raise ImportError(
                    "engine='tensorflow_text' needs tensorflow-text matching TensorFlow "
                    "(pip install 'tensorflow-text==2.21.*'), or pass engine='python'"
                ) from error
            self._sp = tensorflow_text.SentencepieceTokenizer(
                model=tokenizer.model_proto, out_type=tf.int32)
            self._marker_ids = tf.constant(tokenizer._marker_ids, tf.int32)

    def encode(self, texts: tf.Tensor) -> tf.Tensor | tf.RaggedTensor:
        """Ids of each text: a 1-D int32 Tensor for a scalar, a RaggedTensor for a batch."""
        return self._apply(texts, self._encode_flat,
                           lambda batch: self._tokenizer.encode_batch(batch))

    def encode_document(self, documents: tf.Tensor) -> tf.Tensor | tf.RaggedTensor:
        """Ids of each document with paragraph, sentence and end-of-document tokens."""
        return self._apply(documents, self._encode_documents_flat,
                           lambda batch: self._tokenizer.encode_documents(
                               batch, num_threads=self.python_threads))

    # -- shared plumbing --------------------------------------------------------------------

    def _apply(self, texts, graph_fn, python_fn):
        texts = tf.convert_to_tensor(texts, tf.string)
        if texts.shape.rank not in (0, 1):
            raise ValueError(f"expected a scalar or 1-D batch of strings, got shape {texts.shape}")
        batch = tf.reshape(texts, [-1])
        if self.engine == "python":
            ids = _py_function_encode(batch, python_fn)
        else:
            if self._validate:
                batch = _checked_utf8(batch)
            ids = graph_fn(batch)
        return ids[0] if texts.shape.rank == 0 else ids

    def _encode_flat(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """[M] strings -> [M, None] ids; a literal U+2581 becomes its byte pieces."""
        chunks = tf.strings.split(texts, sep=specials.WHITESPACE_MARKER)
        tokens = self._sp.tokenize(chunks.flat_values)
        num_chunks = tf.shape(chunks.flat_values, out_type=tf.int64)[0]
        markers = tf.RaggedTensor.from_tensor(
            tf.tile(self._marker_ids[tf.newaxis], [num_chunks, 1]))
        with_markers = tf.concat([tokens, markers], axis=1)
        # Every chunk but each text's last is followed by a marker.
        last_chunk = tf.scatter_nd((chunks.row_limits() - 1)[:, tf.newaxis],
                                   tf.ones_like(chunks.row_limits(), tf.bool), [num_chunks])
        marker_length = tf.where(last_chunk, tf.constant(0, tf.int64),
                                 len(specials.WHITESPACE_MARKER_BYTE_PIECES))
        keep_length = tokens.row_lengths() + marker_length
        position = tf.ragged.range(with_markers.row_lengths())
        kept = tf.ragged.boolean_mask(with_markers, position < keep_length[:, tf.newaxis])
        return tf.RaggedTensor.from_row_splits(kept, chunks.row_splits).merge_dims(1, 2)

    def _encode_documents_flat(self, documents: tf.Tensor) -> tf.RaggedTensor:
        paragraphs = tf.strings.split(documents, sep="\n")  # [N, P]
        marked = tf.strings.regex_replace(paragraphs.flat_values, SENTENCE_BOUNDARY_PATTERN,
                                          b"\\1" + _CUT + b"\\2")
        sentences = tf.strings.split(marked, sep=_CUT)  # [P_total, S]
        sentences = tf.ragged.boolean_mask(sentences, tf.strings.length(sentences) > 0)
        sentence_ids = _wrap(self._encode_flat(sentences.flat_values),
                             specials.BOS_ID, specials.EOS_ID)
        paragraph_ids = _wrap(
            tf.RaggedTensor.from_row_splits(sentence_ids, sentences.row_splits).merge_dims(1, 2),
            specials.BOP_ID, specials.EOP_ID)
        document_ids = tf.RaggedTensor.from_row_splits(
            paragraph_ids, paragraphs.row_splits).merge_dims(1, 2)
        return _wrap(document_ids, None, specials.EOD_ID)


def _wrap(rows: tf.RaggedTensor, first: int | None, last: int) -> tf.RaggedTensor:
    """Put `first` before and `last` after every row of a [K, None] RaggedTensor."""
    shape = tf.stack([rows.nrows(), 1])

    def column(value):
        return tf.RaggedTensor.from_tensor(tf.fill(shape, tf.constant(value, rows.dtype)))

    parts = ([column(first)] if first is not None else []) + [rows, column(last)]
    return tf.concat(parts, axis=1)


def _checked_utf8(texts: tf.Tensor) -> tf.Tensor:
    repaired = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace",
                                            replacement_char=0xFFFD)
    check = tf.debugging.Assert(tf.reduce_all(tf.equal(repaired, texts)), [_NOT_UTF8])
    with tf.control_dependencies([check]):
        return tf.identity(texts)


def _py_function_encode(texts: tf.Tensor, python_fn) -> tf.RaggedTensor:
    def encode_all(batch):
        encoded = python_fn(batch.numpy().tolist())
        lengths = [len(ids) for ids in encoded]
        flat = [token for ids in encoded for token in ids]
        return tf.constant(flat, tf.int32), tf.constant(lengths, tf.int64)

    values, lengths = tf.py_function(encode_all, [texts], [tf.int32, tf.int64])
    values.set_shape([None])
    lengths.set_shape([None])
    return tf.RaggedTensor.from_row_lengths(values, lengths)
