"""Paragraph and sentence splitting for document-level encoding.

The rules are deliberately simple and exactly reversible (pieces concatenate back to the input):

- Paragraphs are the lines of a document, split on "\\n" only. The newline itself is not kept:
  paragraph start/end tokens stand for it and decoding puts it back.
- A sentence ends after a run of terminators (. ! ? … 。 ！ ？) plus any closing quotes or
  brackets, when that run is followed by horizontal whitespace and then a non-space character.
  The whitespace starts the next sentence, so word pieces keep their usual leading-space form.
  "3.14", "e.g.x" and a trailing "end.  " do not split; CJK text without spaces stays one sentence.

The same regular expression runs in Python (`re`) and in TensorFlow (RE2): it uses explicit
ASCII whitespace classes so both engines find identical, leftmost non-overlapping matches.
"""
import re

_TERMINATORS = ".!?\u2026\u3002\uff01\uff1f"
_CLOSERS = "\"'\u201d\u2019)\\]\u00bb\u300d\u300f"
_SPACE = "\\t\\x0b\\x0c\\r "

# Group 1: the sentence-final punctuation; group 2: the whitespace and the next sentence's
# first character. A sentence boundary sits between the two groups.
SENTENCE_BOUNDARY_PATTERN = (
    f"([{_TERMINATORS}]+[{_CLOSERS}]*)([{_SPACE}]+[^{_SPACE}\\n])")
_SENTENCE_BOUNDARY = re.compile(SENTENCE_BOUNDARY_PATTERN)


def split_paragraphs(document: str) -> list[str]:
    """Lines of `document`; "\\n".join(result) == document. An empty document is one empty line."""
    return document.split("\n")


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of one paragraph; "".join(result) == paragraph and no piece is empty."""
    if not paragraph:
        return []
    cuts = [match.end(1) for match in _SENTENCE_BOUNDARY.finditer(paragraph)]
    if not cuts:
        return [paragraph]
    starts = [0] + cuts
    ends = cuts + [len(paragraph)]
    return [paragraph[start:end] for start, end in zip(starts, ends)]


# A noncharacter marks sentence boundaries in the fast path; documents that contain it take
# the per-paragraph path, which gives the same result.
_CUT = "\uffff"
_CUT_REPLACEMENT = "\\1" + _CUT + "\\2"


def split_document(document: str) -> list[list[str]]:
    """The sentences of each paragraph of `document` (an empty line has none).

    Matches never span a newline, so one substitution over the whole document finds the same
    boundaries as `split_sentences` does line by line, with the loops in C.
    """
    if _CUT in document:
        return [split_sentences(paragraph) for paragraph in split_paragraphs(document)]
    marked = _SENTENCE_BOUNDARY.sub(_CUT_REPLACEMENT, document)
    return [paragraph.split(_CUT) if paragraph else [] for paragraph in marked.split("\n")]
