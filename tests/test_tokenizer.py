"""The tokenizer is exactly invertible, marks document structure, and rejects bad input."""
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

import tokenizer
from tokenizer import specials
from tokenizer.sample_text import stdlib_docstrings

VOCAB_SIZE = 400

HARD_CASES = {
    "empty": "",
    "single space": " ",
    "whitespace runs": "a  b   c    d",
    "leading and trailing spaces": "   padded   ",
    "tabs": "\tcol1\t\tcol2\t",
    "crlf lines": "line one\r\nline two\r\n",
    "blank lines": "\n\n\npara\n\n",
    "only newlines": "\n",
    "nul": "before\x00after\x00",
    "control characters": "\x01\x1b[0m\x7f\x85",
    "emoji and zwj sequences": "family: \U0001F468\u200D\U0001F469\u200D\U0001F467 \U0001F642",
    "combining marks": "e\u0301 vs \u00e9, A\u030A vs \u00c5, \u1100\u1161",
    "nfkc-sensitive": "\ufb01nance \uff21\uff22 \u00bd \u2460 \u00a0nbsp",
    "right to left": "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u200fmixed\u200e",
    "literal whitespace marker": "\u2581",
    "marker runs and edges": "\u2581\u2581x \u2581 y\u2581",
    "marker next to space": " \u2581 ",
    "unseen scripts": "\u16a0\u16a2\u16a6 \U00010348 \U0001D11E \u0f00",
    "private use and noncharacters": "\ue000\U0010fffd\ufffe\uffff",
    "special piece spellings": "<s></s><p></p><eod><pad><unk> \u2047",
    "byte piece spelling": "<0x41><0xFF>",
    "sentence punctuation": 'He said "Stop." Then left! Really?! Yes... 3.14 e.g. x',
    "cjk": "\u4eca\u65e5\u306f\u3002\u660e\u65e5\u3082\u3002 \u5927\u4e08\u592b\uff1f",
    "long word": "x" * 5000,
    "vertical whitespace": "a\x0bb\x0cc\u2028d\u2029e",
}


@pytest.fixture(scope="module")
def tok():
    documents = list(stdlib_docstrings(max_chars=150_000))
    return tokenizer.Tokenizer(tokenizer.train_model_proto(documents, VOCAB_SIZE, seed=3))


@pytest.mark.parametrize("text", HARD_CASES.values(), ids=HARD_CASES.keys())
def test_hard_cases_round_trip_as_text_and_as_document(tok, text):
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode_document(text)) == text


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_any_unicode_text_round_trips(tok, text):
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode_document(text)) == text


@hypothesis_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.sampled_from(list(" \t\r\n.!?\"'\u2581\u2026xyZ\u00e9")),
                    max_size=60))
def test_structure_heavy_text_round_trips(tok, text):
    """Dense in the characters the paragraph/sentence splitter and the marker escape act on."""
    assert tok.decode(tok.encode_document(text)) == text


def test_plain_encode_uses_only_word_and_byte_pieces(tok):
    ids = tok.encode("Return the value.\nThen stop.")
    assert ids and min(ids) >= specials.NUM_SPECIAL


def test_vocabulary_has_requested_size_and_fixed_special_ids(tok):
    assert tok.vocab_size == VOCAB_SIZE
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    assert (tok.bop_id, tok.eop_id, tok.eod_id) == (4, 5, 6)
    assert [tok.id_to_piece(i) for i in range(7)] == [
        "<pad>", "<unk>", "<s>", "</s>", "<p>", "</p>", "<eod>"]


def test_trained_pieces_are_multi_character_words(tok):
    pieces = [tok.id_to_piece(i) for i in tok.encode("the function returns the value")]
    assert "\u2581the" in pieces
    assert len(pieces) < len("the function returns the value")


def test_document_structure_tokens(tok):
    ids = tok.encode_document("One. Two?\n\nThree")
    s, e, p, q, d = tok.bos_id, tok.eos_id, tok.bop_id, tok.eop_id, tok.eod_id
    structure = [i for i in ids if i in specials.STRUCTURE_IDS]
    assert structure == [p, s, e, s, e, q, p, q, p, s, e, q, d]
    assert ids[:2] == [p, s] and ids[-2:] == [q, d]
    first_sentence = ids[2:ids.index(e)]
    assert first_sentence == tok.encode("One.")
    second = ids[ids.index(e) + 2:]
    assert second[:len(tok.encode(" Two?"))] == tok.encode(" Two?")


def test_unknown_characters_become_bytes_not_unk(tok):
    ids = tok.encode("\U0001F99C")
    assert tok.unk_id not in ids
    assert [tok.id_to_piece(i) for i in ids] == ["<0xF0>", "<0x9F>", "<0xA6>", "<0x9C>"]


def test_literal_marker_is_encoded_as_its_bytes(tok):
    ids = tok.encode("a\u2581b")
    pieces = [tok.id_to_piece(i) for i in ids]
    assert pieces[1:4] == ["<0xE2>", "<0x96>", "<0x81>"]
    assert tok.decode(ids) == "a\u2581b" != tok.decode(tok.encode("a b"))


def test_decode_drops_padding_and_joins_documents(tok):
    first, second = tok.encode_document("A.\nB."), tok.encode_document("C.")
    padded = first + second + [tok.pad_id] * 5
    assert tok.decode(padded) == "A.\nB.C."


def test_decode_accepts_numpy_and_tensor_ids(tok):
    import numpy as np
    import tensorflow as tf
    ids = tok.encode_document("Numbers: 1, 2.\nDone.")
    assert tok.decode(np.array(ids, np.int32)) == "Numbers: 1, 2.\nDone."
    assert tok.decode(tf.constant(ids)) == "Numbers: 1, 2.\nDone."


def test_encode_batch_matches_encode(tok):
    texts = ["plain", "with \u2581 marker", "", "\U0001F642 emoji"]
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]


def test_utf8_bytes_are_accepted(tok):
    assert tok.encode("caf\u00e9".encode()) == tok.encode("caf\u00e9")


@pytest.mark.parametrize("method", ["encode", "encode_document"])
def test_invalid_utf8_bytes_are_rejected_with_offset(tok, method):
    with pytest.raises(ValueError, match=r"not valid UTF-8: byte\(s\) ff at offset 2"):
        getattr(tok, method)(b"ok\xffno")


@pytest.mark.parametrize("method", ["encode", "encode_document", "encode_batch"])
def test_unpaired_surrogate_is_rejected(tok, method):
    text = "bad \ud800 here"
    with pytest.raises(ValueError, match="unpaired surrogate U\\+D800 at index 4"):
        getattr(tok, method)([text] if method == "encode_batch" else text)


@pytest.mark.parametrize("value", [None, 42, ["a"], 3.5])
def test_non_text_is_rejected(tok, value):
    with pytest.raises(TypeError, match="expected text as str"):
        tok.encode(value)


@pytest.mark.parametrize("ids, error, message", [
    ([7, 10_000], ValueError, "id 10000 at position 1 is outside the vocabulary"),
    ([-1], ValueError, "id -1 at position 0"),
    ([7, 8.0, 9], TypeError, "item 1 is float"),
    (["<s>"], TypeError, "item 0 is str"),
    ("text", TypeError, "sequence of int ids"),
])
def test_bad_ids_are_rejected(tok, ids, error, message):
    with pytest.raises(error, match=message):
        tok.decode(ids)


def test_save_and_load_round_trip(tok, tmp_path):
    path = tmp_path / "vocab.model"
    path.write_bytes(tok.model_proto)
    loaded = tokenizer.load(path)
    text = HARD_CASES["sentence punctuation"]
    assert loaded.encode_document(text) == tok.encode_document(text)
    assert loaded.vocab_size == VOCAB_SIZE


def test_missing_vocabulary_file(tmp_path):
    with pytest.raises(tokenizer.VocabularyError, match="does not exist.*tokenizer.train"):
        tokenizer.load(tmp_path / "nope.model")


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"\x0a\xff\xff\xff"])
def test_corrupt_vocabulary_file(tmp_path, content):
    path = tmp_path / "corrupt.model"
    path.write_bytes(content)
    with pytest.raises(tokenizer.VocabularyError, match="corrupt.model.*(corrupt|cannot)"):
        tokenizer.load(path)


def test_truncated_vocabulary_file(tok, tmp_path):
    path = tmp_path / "truncated.model"
    path.write_bytes(tok.model_proto[: len(tok.model_proto) // 2])
    with pytest.raises(tokenizer.VocabularyError, match="truncated.model"):
        tokenizer.load(path)


@pytest.mark.parametrize("settings, problem", [
    ({}, "no byte pieces"),  # sentencepiece's defaults: NFKC, dummy prefix, no byte fallback
    ({"byte_fallback": True, "pad_id": 0, "unk_id": 1, "bos_id": 2, "eos_id": 3,
      "control_symbols": ["<p>", "</p>", "<eod>"]}, "encoding loses text"),
])
def test_lossy_sentencepiece_model_is_refused(tmp_path, settings, problem):
    import io
    import sentencepiece as spm
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(stdlib_docstrings(max_chars=50_000))), model_writer=proto,
        vocab_size=400, minloglevel=2, **settings)
    path = tmp_path / "lossy.model"
    path.write_bytes(proto.getvalue())
    with pytest.raises(tokenizer.VocabularyError,
                       match=f"cannot be used by this tokenizer: .*{problem}"):
        tokenizer.load(path)


def test_encode_documents_matches_encode_document_on_threads(tok):
    documents = list(HARD_CASES.values()) + list(stdlib_docstrings(max_chars=20_000))
    expected = [tok.encode_document(d) for d in documents]
    assert tok.encode_documents(documents) == expected
    assert tok.encode_documents(documents, num_threads=2) == expected


def test_load_through_tensorflow_file_systems(tok):
    import tensorflow as tf
    with tf.io.gfile.GFile("ram://tokenizer_test/vocab.model", "wb") as file:
        file.write(tok.model_proto)
    loaded = tokenizer.load("ram://tokenizer_test/vocab.model")
    assert loaded.encode("Same ids.") == tok.encode("Same ids.")
    with pytest.raises(tokenizer.VocabularyError, match="does not exist"):
        tokenizer.load("ram://tokenizer_test/missing.model")
