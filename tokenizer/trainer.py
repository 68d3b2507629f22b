"""Training a lossless word-piece vocabulary with sentencepiece.

Training sees the same units the tokenizer encodes: the sentences that `structure` cuts each
line of each document into. Given the same documents, settings and seed, the model file is
byte-for-byte the same on every machine (sentencepiece's sampling uses the seed, and the
thread count, which changes how work is split, is a fixed setting rather than the core count).
"""
from __future__ import annotations

import io
import logging
import os
from typing import Iterable, Iterator

import sentencepiece as spm

from tokenizer import specials
from tokenizer.errors import TrainingError
from tokenizer.structure import split_paragraphs, split_sentences

# Settings that make encoding invertible; see core.py.
LOSSLESS_SETTINGS = dict(
    normalization_rule_name="identity",
    byte_fallback=True,
    add_dummy_prefix=False,
    remove_extra_whitespaces=False,
    split_digits=False,
    pad_id=specials.PAD_ID, pad_piece=specials.PAD_PIECE,
    unk_id=specials.UNK_ID, unk_piece=specials.UNK_PIECE,
    bos_id=specials.BOS_ID, bos_piece=specials.BOS_PIECE,
    eos_id=specials.EOS_ID, eos_piece=specials.EOS_PIECE,
    control_symbols=list(specials.CONTROL_PIECES),
)


def training_sentences(documents: Iterable[str], max_sentence_bytes: int,
                       skipped: dict | None = None) -> Iterator[str]:
    """Non-blank sentences of `documents`; overlong ones are skipped and counted in `skipped`."""
    skipped = {} if skipped is None else skipped
    skipped.setdefault("too_long", 0)
    for document in documents:
        if not isinstance(document, str):
            raise TrainingError(
                f"training documents must be str, got {type(document).__name__}")
        for paragraph in split_paragraphs(document):
            for sentence in split_sentences(paragraph):
                if sentence.isspace():
                    continue
                if len(sentence) * 4 > max_sentence_bytes and (
                        len(sentence.encode("utf-8", "replace")) > max_sentence_bytes):
                    skipped["too_long"] += 1
                    continue
                # A literal U+2581 is encoded as bytes, so it must not train as a space.
                yield sentence.replace(specials.WHITESPACE_MARKER, "")


def train_model_proto(documents: Iterable[str], vocab_size: int = specials.DEFAULT_VOCAB_SIZE,
                      *, seed: int = 0, model_type: str = "unigram",
                      input_sentence_size: int = 10_000_000,
                      character_coverage: float = 0.9995, num_threads: int = 4,
                      max_sentence_bytes: int = 16384) -> bytes:
    """A serialized sentencepiece model trained on `documents` (an iterable of str)."""
    check_vocab_size(vocab_size)
    skipped: dict = {}
    sentences = training_sentences(documents, max_sentence_bytes, skipped)
    counted = _CountingIterator(sentences)
    proto = io.BytesIO()
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=counted, model_writer=proto, vocab_size=vocab_size,
            model_type=model_type, input_sentence_size=input_sentence_size,
            shuffle_input_sentence=True, character_coverage=character_coverage,
            num_threads=num_threads, max_sentence_length=max_sentence_bytes,
            minloglevel=2, **LOSSLESS_SETTINGS)
    except RuntimeError as error:
        raise TrainingError(_explain_training_failure(str(error), vocab_size, counted.count)
                            ) from None
    if skipped["too_long"]:
        logging.warning("skipped %d sentences longer than %d UTF-8 bytes",
                        skipped["too_long"], max_sentence_bytes)
    return proto.getvalue()


def train_vocabulary(documents: Iterable[str], output_path: str | os.PathLike,
          vocab_size: int = specials.DEFAULT_VOCAB_SIZE, **options) -> str:
    """Train on `documents` and write the vocabulary to `output_path`; returns the path."""
    output_path = os.fspath(output_path)
    proto = train_model_proto(documents, vocab_size, **options)
    directory = os.path.dirname(output_path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    temporary = output_path + ".tmp"
    with open(temporary, "wb") as file:
        file.write(proto)
    os.replace(temporary, output_path)  # readers never see a half-written vocabulary
    return output_path


def check_vocab_size(vocab_size: int) -> None:
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        raise TrainingError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
    if vocab_size < specials.MIN_VOCAB_SIZE:
        raise TrainingError(
            f"vocab_size={vocab_size} is too small: {specials.NUM_SPECIAL} special tokens and "
            f"{specials.NUM_BYTE_PIECES} byte pieces need {specials.MIN_VOCAB_SIZE - 1} ids, "
            f"so use at least {specials.MIN_VOCAB_SIZE} "
            f"(the paper uses {specials.DEFAULT_VOCAB_SIZE})")


def _explain_training_failure(message: str, vocab_size: int, sentences: int) -> str:
    if sentences == 0:
        return "no training text: the input documents are empty or blank"
    if "Vocabulary size too high" in message or "Vocabulary size is smaller" in message:
        return (f"cannot train {vocab_size} pieces from {sentences} sentences: {message}. "
                "Give more text or a smaller --vocab_size")
    return f"sentencepiece training failed on {sentences} sentences: {message}"


class _CountingIterator:
    def __init__(self, iterator: Iterator[str]):
        self._iterator, self.count = iterator, 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        item = next(self._iterator)
        self.count += 1
        return item
