"""Training a lossless word-piece vocabulary with sentencepiece.

Training sees the same units the tokenizer encodes: the sentences that `structure` cuts each
line of each document into. Given the same documents, settings and seed, the model file is
byte-for-byte the same on every machine: sentence sampling and sentencepiece's generator are
seeded, and the thread count, which changes how sentencepiece splits its work, is a setting
rather than the machine's core count.
"""
from __future__ import annotations

import collections
import io
import logging
import os
import random
import re
import uuid
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
    """A serialized sentencepiece model trained on `documents` (an iterable of str).

    At most `input_sentence_size` sentences (0 = all) are sampled with `seed`. Characters
    beyond `character_coverage`, or beyond what `vocab_size` leaves room for, are not pieces
    of their own: they are encoded as bytes.
    """
    check_vocab_size(vocab_size)
    skipped: dict = {}
    sentences = sample_sentences(training_sentences(documents, max_sentence_bytes, skipped),
                                 input_sentence_size, seed)
    if skipped["too_long"]:
        logging.warning("skipped %d sentences longer than %d UTF-8 bytes",
                        skipped["too_long"], max_sentence_bytes)
    if not sentences:
        raise TrainingError("no training text: the input documents are empty or blank")
    if not 0.98 <= character_coverage <= 1.0:
        raise TrainingError(f"character_coverage={character_coverage} must be in [0.98, 1]")
    max_chars = max(1, (vocab_size - specials.MIN_VOCAB_SIZE + 1) // 2)
    sentences = split_at_rare_characters(sentences, max_chars)
    proto = io.BytesIO()
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=proto, vocab_size=vocab_size,
            model_type=model_type, input_sentence_size=0,
            character_coverage=character_coverage,
            num_threads=num_threads, max_sentence_length=max_sentence_bytes,
            minloglevel=2, **LOSSLESS_SETTINGS)
    except RuntimeError as error:
        raise TrainingError(_explain_training_failure(str(error), vocab_size, len(sentences))
                            ) from None
    return proto.getvalue()


def sample_sentences(sentences: Iterable[str], size: int, seed: int) -> list[str]:
    """A uniform sample of `size` sentences (reservoir sampling), or all if size is 0."""
    if size <= 0:
        return list(sentences)
    rng = random.Random(seed)
    sample: list[str] = []
    for seen, sentence in enumerate(sentences):
        if seen < size:
            sample.append(sentence)
        else:
            slot = rng.randrange(seen + 1)
            if slot < size:
                sample[slot] = sentence
    return sample


def split_at_rare_characters(sentences: list[str], max_chars: int) -> list[str]:
    """Sentences cut at every character outside the `max_chars` most frequent ones.

    A small vocabulary cannot give every character its own piece; the rare ones will be
    encoded as bytes, which no word piece crosses, so training should not see pieces across
    them either. (sentencepiece itself only drops characters below a 98% coverage floor.)
    """
    counts = collections.Counter()
    for sentence in sentences:
        counts.update(sentence)
    if len(counts) <= max_chars:
        return sentences
    rare = [char for char, _ in counts.most_common()[max_chars:]]
    rare_pattern = re.compile("[" + "".join(re.escape(char) for char in sorted(rare)) + "]+")
    pieces = (piece for sentence in sentences for piece in rare_pattern.split(sentence))
    return [piece for piece in pieces if piece]


def train_vocabulary(documents: Iterable[str], output_path: str | os.PathLike,
          vocab_size: int = specials.DEFAULT_VOCAB_SIZE, **options) -> str:
    """Train on `documents` and write the vocabulary to `output_path`; returns the path."""
    output_path = os.fspath(output_path)
    proto = train_model_proto(documents, vocab_size, **options)
    directory = os.path.dirname(output_path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    temporary = f"{output_path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # one per writer
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
    message = message.rstrip(".")
    if "Vocabulary size too high" in message or "Vocabulary size is smaller" in message:
        return (f"cannot train {vocab_size} pieces from {sentences} sentences: {message}. "
                "Give more text or a smaller --vocab_size")
    return f"sentencepiece training failed on {sentences} sentences: {message}"
