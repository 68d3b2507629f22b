"""Reserved ids shared by the trainer, the tokenizer and the tf.data ops.

Every vocabulary this package trains puts the special tokens at the same fixed ids, followed
by the 256 byte pieces, so a model's input layer can rely on `PAD_ID == 0` and friends without
reading the vocabulary file.
"""

PAD_ID = 0  # padding; never produced by encode
UNK_ID = 1  # out-of-vocabulary; unreachable in practice because unknown text falls back to bytes
BOS_ID = 2  # sentence start
EOS_ID = 3  # sentence end
BOP_ID = 4  # paragraph start
EOP_ID = 5  # paragraph end
EOD_ID = 6  # end of document

PAD_PIECE, UNK_PIECE, BOS_PIECE, EOS_PIECE = "<pad>", "<unk>", "<s>", "</s>"
# Control symbols: matched only by id, never by text, so "<p>" typed in a document stays text.
CONTROL_PIECES = ("<p>", "</p>", "<eod>")

NUM_SPECIAL = 7
NUM_BYTE_PIECES = 256
# Special tokens, the byte pieces, and at least one learned piece (the whitespace marker).
MIN_VOCAB_SIZE = NUM_SPECIAL + NUM_BYTE_PIECES + 1

DEFAULT_VOCAB_SIZE = 24006  # the paper's language-model vocabulary, special tokens included

STRUCTURE_IDS = frozenset({PAD_ID, BOS_ID, EOS_ID, BOP_ID, EOP_ID, EOD_ID})

# sentencepiece turns spaces into U+2581 before lookup, so a literal U+2581 in the text would
# decode as a space. The tokenizer encodes each literal U+2581 as its three UTF-8 byte pieces
# instead, which sentencepiece decodes back to U+2581.
WHITESPACE_MARKER = "\u2581"
WHITESPACE_MARKER_BYTE_PIECES = tuple(f"<0x{b:02X}>" for b in WHITESPACE_MARKER.encode("utf-8"))
