"""The invertible word-piece tokenizer over a sentencepiece model.

`decode(encode(text)) == text` for every valid Unicode string because the model is trained
with identity normalization, no dummy prefix, whitespace kept as is and byte fallback (any
character outside the vocabulary becomes its UTF-8 bytes), and because a literal U+2581 —
the one character sentencepiece cannot tell from a space — is written as byte pieces.
"""
from __future__ import annotations

import os
from typing import Iterable, Iterator, Sequence

import sentencepiece as spm

from tokenizer import specials
from tokenizer.errors import (VocabularyError, invalid_utf8_message,
                              unpaired_surrogate_message)
from tokenizer.structure import split_document


# sentencepiece's batch call costs about as much as ten single calls before it pays off.
_MIN_BATCH = 10


class Tokenizer:
    """Encodes text to ids and back; `encode_document` adds paragraph/sentence/document tokens."""

    def __init__(self, model_proto: bytes, source: str = "<bytes>"):
        self._model_proto = model_proto
        self._sp = _load_processor(model_proto, source)
        self._marker_ids = [self._sp.piece_to_id(piece)
                            for piece in specials.WHITESPACE_MARKER_BYTE_PIECES]

    # -- properties a model or a data pipeline needs ---------------------------------------

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    pad_id = property(lambda self: specials.PAD_ID, doc="Padding id (0).")
    unk_id = property(lambda self: specials.UNK_ID, doc="Out-of-vocabulary id.")
    bos_id = property(lambda self: specials.BOS_ID, doc="Sentence start id.")
    eos_id = property(lambda self: specials.EOS_ID, doc="Sentence end id.")
    bop_id = property(lambda self: specials.BOP_ID, doc="Paragraph start id.")
    eop_id = property(lambda self: specials.EOP_ID, doc="Paragraph end id.")
    eod_id = property(lambda self: specials.EOD_ID, doc="End of document id.")

    @property
    def model_proto(self) -> bytes:
        """The serialized sentencepiece model (what tensorflow-text's op loads)."""
        return self._model_proto

    @property
    def sentencepiece(self) -> spm.SentencePieceProcessor:
        return self._sp

    def id_to_piece(self, token_id: int) -> str:
        return self._sp.id_to_piece(token_id)

    # -- plain text -------------------------------------------------------------------------

    def encode(self, text: str | bytes) -> list[int]:
        """Word-piece ids of `text`, no structure tokens."""
        text = _as_text(text)
        if specials.WHITESPACE_MARKER in text:
            return self._encode_with_marker(text)
        try:
            return self._sp.encode(text)
        except RuntimeError:
            raise ValueError(unpaired_surrogate_message(text)) from None

    def encode_batch(self, texts: Sequence[str | bytes]) -> list[list[int]]:
        """`encode` over many texts in one sentencepiece call."""
        return self._encode_texts([_as_text(text) for text in texts])

    def _encode_texts(self, texts: list[str], may_hold_marker: bool = True,
                      num_threads: int = 1) -> list[list[int]]:
        try:
            if num_threads == 1 and len(texts) < _MIN_BATCH:
                encoded = [self._sp.encode(text) for text in texts]
            else:
                encoded = self._sp.encode(texts, num_threads=num_threads)
        except (RuntimeError, TypeError):  # sentencepiece's reaction to unpaired surrogates
            bad = next((text for text in texts if not _is_encodable(text)), "")
            raise ValueError(unpaired_surrogate_message(bad)) from None
        for i, text in enumerate(texts if may_hold_marker else ()):
            if specials.WHITESPACE_MARKER in text:
                encoded[i] = self._encode_with_marker(text)
        return encoded

    def _encode_with_marker(self, text: str) -> list[int]:
        chunks = text.split(specials.WHITESPACE_MARKER)
        try:
            encoded = self._sp.encode(chunks, num_threads=1)
        except (RuntimeError, TypeError):
            raise ValueError(unpaired_surrogate_message(text)) from None
        ids = list(encoded[0])
        for chunk_ids in encoded[1:]:
            ids.extend(self._marker_ids)
            ids.extend(chunk_ids)
        return ids

    # -- documents --------------------------------------------------------------------------

    def encode_document(self, document: str | bytes) -> list[int]:
        """Ids of a document with structure tokens:

        for each line: <p> (<s> sentence pieces </s>)* </p>, then <eod> once at the end.
        An empty line gives <p></p>; decoding restores the newlines between lines.
        """
        return self.encode_documents([document])[0]

    def encode_documents(self, documents: Sequence[str | bytes],
                         num_threads: int = 1) -> list[list[int]]:
        """`encode_document` over many documents; sentencepiece encodes all their sentences
        in one call, on `num_threads` C++ threads."""
        documents = [_as_text(document) for document in documents]
        split = [split_document(document) for document in documents]
        sentences = [s for paragraphs in split for sentences in paragraphs for s in sentences]
        may_hold_marker = any(specials.WHITESPACE_MARKER in d for d in documents)
        encoded = iter(self._encode_texts(sentences, may_hold_marker, num_threads))
        return [_assemble_document(paragraphs, encoded) for paragraphs in split]

    # -- decoding ---------------------------------------------------------------------------

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`, structure tokens dropped; the inverse of encode and encode_document.

        A paragraph start that follows another paragraph of the same document (no <eod>
        between them) stands for the newline that separated the two lines.
        """
        ids = _as_id_list(ids)
        try:
            return self._decode_valid(ids)
        except (TypeError, IndexError):  # sentencepiece's reaction to non-int or unknown ids
            _explain_bad_ids(ids, self.vocab_size)
            raise

    def _decode_valid(self, ids: list[int]) -> str:
        if specials.BOP_ID not in ids:
            return self._sp.decode(ids)
        bop, eod = specials.BOP_ID, specials.EOD_ID
        segments, start = [], 0
        while True:  # cut before each paragraph start
            try:
                cut = ids.index(bop, start + 1 if segments else 0)
            except ValueError:
                segments.append(ids[start:])
                break
            segments.append(ids[start:cut])
            start = cut
        texts = self._sp.decode(segments, num_threads=1)
        pieces = [texts[0]]
        for k in range(1, len(segments)):
            if k > 1 and eod not in segments[k - 1]:
                pieces.append("\n")
            pieces.append(texts[k])
        return "".join(pieces)


def _assemble_document(paragraphs: list[list[str]], encoded: Iterator[list[int]]) -> list[int]:
    """Structure tokens around the next sentences' ids from `encoded`."""
    bos, eos = [specials.BOS_ID], [specials.EOS_ID]
    ids: list[int] = []
    for sentences in paragraphs:
        ids.append(specials.BOP_ID)
        for _ in sentences:
            ids += bos
            ids += next(encoded)
            ids += eos
        ids.append(specials.EOP_ID)
    ids.append(specials.EOD_ID)
    return ids


def load(path: str | os.PathLike) -> Tokenizer:
    """The tokenizer saved at `path` (a sentencepiece .model file written by tokenizer.train)."""
    path = os.fspath(path)
    return Tokenizer(_read_bytes(path), source=path)


def _read_bytes(path: str) -> bytes:
    try:
        if "://" in path:  # gs://, s3://, hdfs://: let TensorFlow's file systems read it.
            import tensorflow as tf
            return tf.io.gfile.GFile(path, "rb").read()
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        raise VocabularyError(
            f"vocabulary file {path!r} does not exist; train one with "
            "`python -m tokenizer.train --input=... --output=...`") from None
    except Exception as error:  # tf.errors.NotFoundError and the like
        if type(error).__name__ == "NotFoundError":
            raise VocabularyError(f"vocabulary file {path!r} does not exist") from None
        raise


# Text that a lossy sentencepiece setting would change: double and edge spaces
# (remove_extra_whitespaces), a leading space (add_dummy_prefix), NFKC/NFC-sensitive
# characters (normalization), and characters no vocabulary holds (byte_fallback).
_PROBE = " \u00a0\ufb01 \uff21\u00bd  A\u030a \u00c5\t\r\n\x00\U0001f642\U000e0100 end  "


def _load_processor(model_proto: bytes, source: str) -> spm.SentencePieceProcessor:
    """Refuse corrupt files and sentencepiece models that would lose text on encode."""
    processor = spm.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(model_proto)
    except (RuntimeError, OSError) as error:
        raise VocabularyError(
            f"vocabulary file {source!r} is corrupt or not a sentencepiece model ({error})"
        ) from None
    size = processor.get_piece_size()
    expected = [specials.PAD_PIECE, specials.UNK_PIECE, specials.BOS_PIECE,
                specials.EOS_PIECE, *specials.CONTROL_PIECES]
    actual = [processor.id_to_piece(i) for i in range(min(size, specials.NUM_SPECIAL))]
    problems = []
    if actual != expected:
        problems.append(f"special tokens {actual} instead of {expected}")
    if processor.piece_to_id("<0xFF>") == processor.unk_id():
        problems.append("no byte pieces (byte_fallback is off)")
    elif processor.decode(processor.encode(_PROBE)) != _PROBE:
        problems.append("encoding loses text (normalization, dummy prefix or "
                        "whitespace settings are not the lossless ones)")
    if problems:
        raise VocabularyError(
            f"vocabulary file {source!r} cannot be used by this tokenizer: "
            + "; ".join(problems) + ". Train it with `python -m tokenizer.train`.")
    return processor


def _as_text(text) -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(invalid_utf8_message(data, error)) from None
    raise TypeError(f"expected text as str (or UTF-8 bytes), got {type(text).__name__}")


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _as_id_list(ids) -> list[int]:
    """`ids` as a list whose first item is an int; sentencepiece checks the rest."""
    if isinstance(ids, (str, bytes)):
        raise TypeError(f"decode expects a sequence of int ids, got {type(ids).__name__}")
    if type(ids) is not list:
        if hasattr(ids, "numpy"):  # tf.Tensor
            ids = ids.numpy()
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
    if ids and type(ids[0]) is not int:  # a str or a list would select another sentencepiece call
        _explain_bad_ids(ids, None)
    return ids


def _explain_bad_ids(ids: list, vocab_size: int | None) -> None:
    """Raise an error naming the first id that is not an in-range int."""
    for position, token in enumerate(ids):
        if type(token) is not int:
            raise TypeError(f"decode expects int ids; item {position} is "
                            f"{type(token).__name__} {token!r}")
        if vocab_size is not None and not 0 <= token < vocab_size:
            raise ValueError(f"id {token} at position {position} is outside the vocabulary "
                             f"[0, {vocab_size})")
