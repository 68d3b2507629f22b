"""Document filters: language by header or identifier, long paragraphs, C4 line rules."""
import random

import pytest

from data_pipelines import synthetic_wet
from data_pipelines.filters import FilterConfig, filter_document
from data_pipelines.wet import WetRecord

LONG_EN = synthetic_wet.english_paragraph(random.Random(0), 5)
LONG_DE = synthetic_wet.foreign_paragraph(random.Random(0), "deu", 4)
LONG_FR = synthetic_wet.foreign_paragraph(random.Random(0), "fra", 4)


def _record(text, language=None):
    return WetRecord(record_id="<urn:uuid:1>", target_uri=None, language=language, text=text,
                     source="test:0")


def test_keeps_only_long_paragraphs():
    text = "Home | News | Contact\n" + LONG_EN + "\nShare this page\n"
    kept, reason = filter_document(_record(text, "eng"), FilterConfig())
    assert reason is None and kept == LONG_EN


def test_min_paragraph_words_is_configurable():
    text = "A short line of six words.\n" + LONG_EN
    assert filter_document(_record(text, "eng"), FilterConfig(min_paragraph_words=6))[0] == text
    kept, reason = filter_document(_record("A short line of six words.", "eng"), FilterConfig())
    assert kept is None and reason == "no_long_paragraph"


@pytest.mark.parametrize("header,kept", [("eng", True), ("eng,deu", True), ("deu,eng", False),
                                         ("fra", False)])
def test_language_header_decides_when_present(header, kept):
    # The header wins even over the text: it is what Common Crawl measured on the full page.
    text, reason = filter_document(_record(LONG_EN, header), FilterConfig())
    assert (text is not None) == kept
    assert reason == (None if kept else "language_header")


@pytest.mark.parametrize("identifier", ["cld2", "langid"])
@pytest.mark.parametrize("text,english", [(LONG_EN, True), (LONG_DE, False), (LONG_FR, False)],
                         ids=["en", "de", "fr"])
def test_identifier_decides_without_header(identifier, text, english):
    config = FilterConfig(language_identifier=identifier, min_paragraph_words=10)
    kept, reason = filter_document(_record(text), config)
    assert (kept is not None) == english
    assert reason == (None if english else "language_identified")


def test_unknown_identifier_is_refused():
    with pytest.raises(ValueError, match="language_identifier"):
        FilterConfig(language_identifier="fasttext")


C4 = FilterConfig(c4_line_rules=True, min_paragraph_words=5)


def test_c4_drops_lines_without_terminal_punctuation_or_with_javascript():
    good = "This sentence is long enough to keep. So is this one here. And a third one."
    text = "\n".join([good, "Click here to read more about it", "Please enable JavaScript "
                      "to view the comments on this page."])
    kept, reason = filter_document(_record(text, "eng"), C4)
    assert reason is None and kept == good


@pytest.mark.parametrize("text,reason", [
    ("Lorem ipsum dolor sit amet, consectetur. One. Two. Three.", "c4_lorem_ipsum"),
    ("function f() { return 1; } is code. One more sentence. And another.", "c4_curly_bracket"),
    ("Only one sentence here, though it is long enough.", "c4_too_few_sentences"),
])
def test_c4_page_rules(text, reason):
    assert filter_document(_record(text, "eng"), C4) == (None, reason)


def test_c4_off_by_default():
    text = "Lorem ipsum dolor sit amet " + LONG_EN
    assert filter_document(_record(text, "eng"), FilterConfig())[1] is None
