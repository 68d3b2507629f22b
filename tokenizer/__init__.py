"""Invertible word-piece tokenizer: decode(encode(text)) == text for any Unicode string.

    tok = tokenizer.load("vocab.model")
    ids = tok.encode_document(text)   # with paragraph/sentence/end-of-document tokens
    assert tok.decode(ids) == text
"""
from tokenizer.core import Tokenizer, load
from tokenizer.errors import TrainingError, VocabularyError
from tokenizer.specials import (BOP_ID, BOS_ID, DEFAULT_VOCAB_SIZE, EOD_ID, EOP_ID, EOS_ID,
                                MIN_VOCAB_SIZE, PAD_ID, UNK_ID)
from tokenizer.trainer import train_model_proto, train_vocabulary

__all__ = ["Tokenizer", "load", "train_vocabulary", "train_model_proto", "TrainingError",
           "VocabularyError", "PAD_ID", "UNK_ID", "BOS_ID", "EOS_ID", "BOP_ID", "EOP_ID",
           "EOD_ID", "DEFAULT_VOCAB_SIZE", "MIN_VOCAB_SIZE"]
