"""The tf.data encoder gives the Python tokenizer's ids, inside a parallel map."""
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import tokenizer
from tokenizer.sample_text import stdlib_docstrings
from tokenizer.tf_ops import TFTokenizer
from test_tokenizer import HARD_CASES


@pytest.fixture(scope="module")
def tok():
    documents = list(stdlib_docstrings(max_chars=100_000))
    return tokenizer.Tokenizer(tokenizer.train_model_proto(documents, 350, seed=2))


@pytest.fixture(scope="module", params=["tensorflow_text", "python", "python-2-threads"])
def tf_tok(request, tok):
    engine, _, threads = request.param.partition("-")
    return TFTokenizer(tok, engine=engine, python_threads=int(threads[:1] or 1))


def test_default_engine_is_python_on_all_usable_cores(tok):
    import os
    encoder = TFTokenizer(tok)
    assert encoder.engine == "python"
    assert encoder.python_threads == len(os.sched_getaffinity(0))


def test_batch_matches_python_ids_on_hard_cases(tok, tf_tok):
    texts = list(HARD_CASES.values())
    documents = tf_tok.encode_document(tf.constant(texts)).to_list()
    plain = tf_tok.encode(tf.constant(texts)).to_list()
    for text, document_ids, plain_ids in zip(texts, documents, plain):
        assert document_ids == tok.encode_document(text), text
        assert plain_ids == tok.encode(text), text


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(texts=st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
                      | st.text(alphabet=st.sampled_from(list(" \t\r\n.!?\"'\u2581xY")),
                                max_size=40), min_size=1, max_size=8))
def test_random_batches_match_python_ids(tok, texts):
    graph = TFTokenizer(tok, engine="tensorflow_text")
    encoded = graph.encode_document(tf.constant([t.encode() for t in texts])).to_list()
    assert encoded == [tok.encode_document(t) for t in texts]


def test_scalar_input_gives_a_dense_vector(tok, tf_tok):
    ids = tf_tok.encode_document(tf.constant("One. Two."))
    assert isinstance(ids, tf.Tensor) and ids.shape.rank == 1
    assert ids.numpy().tolist() == tok.encode_document("One. Two.")


@pytest.mark.slow
def test_parallel_map_in_a_dataset(tok, tf_tok):
    documents = list(stdlib_docstrings(max_chars=30_000))
    dataset = (tf.data.Dataset.from_tensor_slices(documents)
               .batch(8)
               .map(tf_tok.encode_document, num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
               .unbatch())
    got = [ids.numpy().tolist() for ids in dataset]
    assert got == [tok.encode_document(d) for d in documents]
    assert tok.decode(got[0]) == documents[0]


def test_invalid_utf8_is_rejected_in_the_graph(tok):
    with pytest.raises(tf.errors.InvalidArgumentError, match="not valid UTF-8"):
        TFTokenizer(tok, engine="tensorflow_text").encode(tf.constant([b"ok", b"bad \xc3\x28"]))


def test_invalid_utf8_is_rejected_by_the_python_engine(tok):
    with pytest.raises(tf.errors.InvalidArgumentError, match="not valid UTF-8"):
        TFTokenizer(tok, engine="python").encode_document(tf.constant([b"bad \xff"]))


def test_bad_rank_and_engine(tok):
    with pytest.raises(ValueError, match="scalar or 1-D batch"):
        TFTokenizer(tok).encode(tf.constant([["a"]]))
    with pytest.raises(ValueError, match="engine must be"):
        TFTokenizer(tok, engine="spacy")
