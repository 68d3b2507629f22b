"""Vocabulary training from documents, text files and WET files, and the command line."""
import gzip
import os
import subprocess
import sys

import pytest

import tokenizer
from data_pipelines import documents, partition, synthetic_wet
from data_pipelines.filters import FilterConfig
from data_pipelines.wet import ReadStats
from tokenizer import sources
from tokenizer.sample_text import stdlib_docstrings

DOCUMENTS = list(stdlib_docstrings(max_chars=120_000))


def _wet_record(record_type: str, payload: bytes, uri: str = "") -> bytes:
    headers = [f"WARC-Type: {record_type}", f"WARC-Record-ID: <urn:uuid:{uri or 'info'}>",
               "WARC-Date: 2018-01-01T00:00:00Z"]
    if uri:
        headers.append(f"WARC-Target-URI: {uri}")
    headers += ["Content-Type: text/plain", f"Content-Length: {len(payload)}"]
    head = "WARC/1.0\r\n" + "\r\n".join(headers) + "\r\n\r\n"
    return head.encode() + payload + b"\r\n\r\n"


def write_wet(path, documents, extra_payloads=()):
    """A WET file as Common Crawl writes it: one gzip member per record."""
    records = [_wet_record("warcinfo", b"software: test\r\n")]
    records += [_wet_record("conversion", doc.encode(), f"http://example.com/{i}")
                for i, doc in enumerate(documents)]
    records += [_wet_record("conversion", payload) for payload in extra_payloads]
    with open(path, "wb") as file:
        for record in records:
            file.write(gzip.compress(record))


def test_training_is_deterministic_given_seed():
    first = tokenizer.train_model_proto(DOCUMENTS, 350, seed=7)
    second = tokenizer.train_model_proto(iter(DOCUMENTS), 350, seed=7)
    assert first == second


def test_bpe_model_type_is_lossless_too():
    tok = tokenizer.Tokenizer(tokenizer.train_model_proto(DOCUMENTS, 350, model_type="bpe"))
    text = "Return   the\tvalue \u2581 \U0001F642.\nNext line."
    assert tok.decode(tok.encode_document(text)) == text


def test_train_vocabulary_writes_a_loadable_file(tmp_path):
    path = tokenizer.train_vocabulary(DOCUMENTS, tmp_path / "sub" / "vocab.model", 300)
    tok = tokenizer.load(path)
    assert tok.vocab_size == 300
    assert not os.path.exists(path + ".tmp")


@pytest.mark.parametrize("vocab_size", [0, 100, tokenizer.MIN_VOCAB_SIZE - 1])
def test_vocab_size_too_small_names_the_minimum(vocab_size):
    with pytest.raises(tokenizer.TrainingError,
                       match=f"vocab_size={vocab_size} is too small.*at least 264"):
        tokenizer.train_model_proto(DOCUMENTS, vocab_size)


def test_minimum_vocab_size_trains():
    tok = tokenizer.Tokenizer(tokenizer.train_model_proto(DOCUMENTS, tokenizer.MIN_VOCAB_SIZE))
    assert tok.vocab_size == tokenizer.MIN_VOCAB_SIZE
    assert tok.decode(tok.encode("any text \u00e9")) == "any text \u00e9"


def test_vocab_size_larger_than_corpus_supports():
    with pytest.raises(tokenizer.TrainingError, match="cannot train 5000 pieces.*smaller"):
        tokenizer.train_model_proto(["tiny corpus. only a few words."] * 3, 5000)


@pytest.mark.parametrize("documents", [[], ["", "   \n\t"]])
def test_blank_training_input(documents):
    with pytest.raises(tokenizer.TrainingError, match="no training text"):
        tokenizer.train_model_proto(documents, 300)


def test_non_string_document():
    with pytest.raises(tokenizer.TrainingError, match="must be str, got bytes"):
        tokenizer.train_model_proto([b"bytes document"], 300)


def test_text_file_documents_are_blank_line_separated_blocks(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_bytes(b"first doc line 1\r\nline 2\r\n\r\n \n\nsecond doc\n\n\n")
    assert list(sources.text_documents(str(path))) == ["first doc line 1\nline 2", "second doc"]


def test_text_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\u00e9".encode("latin-1"))
    with pytest.raises(tokenizer.TrainingError, match="latin1.txt: text is not valid UTF-8"):
        list(sources.text_documents(str(path)))


def test_wet_documents_are_the_filtered_training_partition(tmp_path):
    """The vocabulary sees what training reads: English long paragraphs, no held-out text."""
    path = tmp_path / "sample.wet.gz"
    synthetic_wet.write_wet_file(str(path), seed=3, count=60)
    stats = ReadStats()
    vocabulary_text = list(sources.wet_documents(str(path), validation_fraction=0.2,
                                                 stats=stats))
    split = partition.Partition(mode="same", validation_fraction=0.2)
    expected = [doc.text for doc in documents.kept_documents(
        [str(path)], split, FilterConfig(), ReadStats())]
    assert vocabulary_text == expected
    held_out = [doc.text for doc in documents.kept_documents(
        [str(path)], partition.Partition(mode="validation", validation_fraction=0.2),
        FilterConfig(), ReadStats())]
    assert held_out and not set(held_out) & set(vocabulary_text)
    assert stats.dropped  # foreign-language documents were filtered out


def test_a_wet_file_with_nothing_to_train_on_is_an_error(tmp_path):
    path = tmp_path / "sample.wet.gz"
    write_wet(path, ["Caf\u00e9 menu.\nSoup of the day."])
    with pytest.raises(tokenizer.TrainingError, match="no document passed the filters"):
        list(sources.wet_documents(str(path)))


def test_unreadable_wet_file(tmp_path):
    path = tmp_path / "garbage.wet.gz"
    path.write_bytes(gzip.compress(b"this is not a WARC file at all\r\n" * 10))
    with pytest.raises(tokenizer.TrainingError, match="garbage.wet.gz: cannot read"):
        list(sources.wet_documents(str(path)))


def test_expand_inputs_globs_and_reports_missing(tmp_path):
    for name in ("b.txt", "a.txt"):
        (tmp_path / name).write_text("x")
    assert sources.expand_inputs([str(tmp_path / "*.txt")]) == [
        str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]
    with pytest.raises(tokenizer.TrainingError, match="matches no file"):
        sources.expand_inputs([str(tmp_path / "missing*.wet.gz")])


def test_command_line_trains_from_text_and_wet_files(tmp_path):
    half = len(DOCUMENTS) // 2
    text_path = tmp_path / "corpus.txt"
    text_path.write_text("\n\n".join(DOCUMENTS[:half]), encoding="utf-8")
    write_wet(tmp_path / "crawl.wet.gz", DOCUMENTS[half:])
    output = tmp_path / "out" / "vocab.model"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-m", "tokenizer.train",
         f"--input={text_path},{tmp_path / '*.wet.gz'}", "--vocab_size=320",
         f"--output={output}", "--seed=1", "--min_paragraph_words=3"],
        cwd=repo, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": repo})
    assert result.returncode == 0, result.stderr[-2000:]
    tok = tokenizer.load(output)
    assert tok.vocab_size == 320
    document = DOCUMENTS[-1]
    assert tok.decode(tok.encode_document(document)) == document
    in_process = tokenizer.train_model_proto(
        sources.documents_from_files([str(text_path), str(tmp_path / "crawl.wet.gz")],
                                     filter_config=FilterConfig(min_paragraph_words=3)), 320,
        seed=1)
    assert output.read_bytes() == in_process


def test_command_line_reports_missing_input(tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-m", "tokenizer.train", f"--input={tmp_path}/none.txt",
         f"--output={tmp_path}/v.model"],
        cwd=repo, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": repo})
    assert result.returncode == 1
    assert result.stderr.strip().endswith("none.txt' matches no file")
    assert "Traceback" not in result.stderr


def test_sentence_sampling_is_seeded_and_uniform_sized():
    from tokenizer.trainer import sample_sentences
    population = [f"s{i}" for i in range(1000)]
    first = sample_sentences(iter(population), 100, seed=5)
    assert first == sample_sentences(iter(population), 100, seed=5)
    assert len(first) == 100 and len(set(first)) == 100
    assert first != sample_sentences(iter(population), 100, seed=6)
    assert sample_sentences(iter(population), 0, seed=5) == population
    assert max(int(s[1:]) for s in first) > 500  # late sentences get sampled too


def test_rare_characters_cut_training_sentences():
    from tokenizer.trainer import split_at_rare_characters
    sentences = ["aab\u00e9ab", "ba\U0001F642\U0001F642ab", "\u00e9"]
    assert split_at_rare_characters(sentences, 2) == ["aab", "ab", "ba", "ab"]
    assert split_at_rare_characters(sentences, 10) == sentences


def test_overlong_sentences_are_skipped_and_counted():
    from tokenizer.trainer import training_sentences
    skipped = {}
    text = "short one. " + "x" * 300 + ". after"
    assert list(training_sentences([text], 100, skipped)) == ["short one.", " after"]
    assert skipped == {"too_long": 1}


def test_character_coverage_out_of_range():
    with pytest.raises(tokenizer.TrainingError, match=r"character_coverage=0.5 must be in"):
        tokenizer.train_model_proto(DOCUMENTS, 300, character_coverage=0.5)
