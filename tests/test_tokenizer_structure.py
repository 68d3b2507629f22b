"""The paragraph and sentence splitter: simple rules, exactly reversible."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenizer.structure import split_document, split_paragraphs, split_sentences


@pytest.mark.parametrize("paragraph, sentences", [
    ("One. Two! Three? Four", ["One.", " Two!", " Three?", " Four"]),
    ('He said "Stop." Then left.', ['He said "Stop."', " Then left."]),
    ("Wait... what?!  Yes.", ["Wait...", " what?!", "  Yes."]),
    ("Pi is 3.14 and e.g.x stays.", ["Pi is 3.14 and e.g.x stays."]),
    ("Trailing space stays.   ", ["Trailing space stays.   "]),
    ("(Inside.) Out.", ["(Inside.)", " Out."]),
    ("\u4eca\u65e5\u306f\u3002 \u660e\u65e5\u3002\u5927\u4e08\u592b", [
        "\u4eca\u65e5\u306f\u3002", " \u660e\u65e5\u3002\u5927\u4e08\u592b"]),
    ("Tab.\tNext", ["Tab.", "\tNext"]),
    ("   ", ["   "]),
    ("", []),
])
def test_sentence_rules(paragraph, sentences):
    assert split_sentences(paragraph) == sentences


def test_paragraphs_are_lines_without_their_newline():
    assert split_paragraphs("a\r\n\nb") == ["a\r", "", "b"]
    assert split_paragraphs("") == [""]


def test_document_split_uses_the_same_rules_per_line():
    document = "First. Second.\n\nThird \uffff mark. Fourth"
    assert split_document(document) == [["First.", " Second."], [],
                                        ["Third \uffff mark.", " Fourth"]]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(" \t\r\n\x0b.!?\u2026\u3002\"')xY\uffff")),
               max_size=50))
def test_splits_concatenate_back_and_both_paths_agree(document):
    paragraphs = split_document(document)
    assert "\n".join("".join(s) for s in paragraphs) == document
    assert paragraphs == [split_sentences(p) for p in split_paragraphs(document)]
    assert all(sentence for sentences in paragraphs for sentence in sentences)
