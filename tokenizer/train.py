"""Train a vocabulary: python -m tokenizer.train --input=a.wet.gz,b.txt --output=vocab.model"""
import sys

from absl import app, flags, logging

from data_pipelines.filters import DEFAULT_MIN_PARAGRAPH_WORDS, FilterConfig
from data_pipelines.partition import DEFAULT_VALIDATION_FRACTION
from tokenizer import sources, specials, trainer
from tokenizer.errors import TrainingError

_INPUT = flags.DEFINE_list(
    "input", None, "Comma-separated files or globs: .wet/.wet.gz (the documents training "
    "reads: English, long paragraphs, held-out ones excluded) or UTF-8 text (documents "
    "separated by blank lines).", required=True)
_OUTPUT = flags.DEFINE_string("output", None, "Path of the vocabulary file to write.",
                              required=True)
_VOCAB_SIZE = flags.DEFINE_integer("vocab_size", specials.DEFAULT_VOCAB_SIZE,
                                   "Pieces in the vocabulary, special tokens and bytes included.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed for sentence sampling.")
_MODEL_TYPE = flags.DEFINE_enum("model_type", "unigram", ["unigram", "bpe"],
                                "sentencepiece segmentation model.")
_SENTENCES = flags.DEFINE_integer("input_sentence_size", 10_000_000,
                                  "Sentences sampled for training (0 = all).")
_VALIDATION_FRACTION = flags.DEFINE_float(
    "validation_fraction", DEFAULT_VALIDATION_FRACTION, "Share of WET documents held out "
    "(by hash of the record id) that the vocabulary must not see: the train command's "
    "--validation_fraction.")
_MIN_PARAGRAPH_WORDS = flags.DEFINE_integer(
    "min_paragraph_words", DEFAULT_MIN_PARAGRAPH_WORDS, "WET documents pass the train "
    "command's filters: paragraphs shorter than this are dropped (its --min_paragraph_words).")
_THREADS = flags.DEFINE_integer("num_threads", 4, "Training threads; part of the result's "
                                "identity, so keep it fixed for reproducible vocabularies.")


def main(argv):
    del argv
    try:
        paths = sources.expand_inputs(_INPUT.value)
        logging.info("training a %d-piece vocabulary from %d files", _VOCAB_SIZE.value,
                     len(paths))
        path = trainer.train_vocabulary(
            sources.documents_from_files(
                paths, _VALIDATION_FRACTION.value,
                FilterConfig(min_paragraph_words=_MIN_PARAGRAPH_WORDS.value)), _OUTPUT.value, _VOCAB_SIZE.value,
            seed=_SEED.value, model_type=_MODEL_TYPE.value,
            input_sentence_size=_SENTENCES.value, num_threads=_THREADS.value)
    except TrainingError as error:
        sys.exit(f"tokenizer.train: {error}")
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
