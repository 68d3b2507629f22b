"""Real English text that every Python installation ships, as Common Crawl WET records.

The demo must run on a fresh machine with nothing downloaded, on real text. The
Python language reference (``pydoc_data.topics``, the text behind ``help()``) and
the standard library's docstrings are such text: a few MB of English prose.
Each becomes one WET conversion record whose lines are paragraphs (wrapped lines
joined, code examples left out), written with the same framing as Common Crawl,
so the demo runs through the real reader, filter, tokenizer and batcher.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.util
import inspect
import os
import sys
import uuid
from typing import Iterator, Sequence

from data_pipelines.synthetic_wet import frame_record, warcinfo_record
from tokenizer.sample_text import file_docstrings

_SKIPPED_MODULES = ("antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo")


def prose_paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks with their wrapped lines joined; code blocks dropped."""
    paragraphs = []
    for block in text.split("\n\n"):
        lines = [line for line in block.split("\n") if line.strip()]
        if not lines or any(line.startswith((" ", "\t", ">>>")) for line in lines[1:]):
            continue
        if lines[0].startswith((" ", "\t", ">>>", "*", "-", "=")):
            continue
        paragraphs.append(" ".join(line.strip() for line in lines))
    return paragraphs


def python_documents() -> Iterator[tuple[str, str]]:
    """(uri, text) of the language reference topics, then of module docstrings."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        topics = {}
    for name in sorted(topics):
        yield f"https://docs.python.org/3/reference/{name}", topics[name]
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in _SKIPPED_MODULES:
            continue
        text = _module_text(name)
        if text:
            yield f"https://docs.python.org/3/library/{name}", text


def library_documents(packages: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(uri, text) of the docstrings of each installed package's modules, one per file.

    Sources are parsed, not imported, so any installed package is safe to read;
    tests are skipped. A package that is not installed is an error naming it.
    """
    for package in packages:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.origin:
            raise ValueError(f"package {package!r} is not installed; pass installed packages.")
        root = os.path.dirname(spec.origin)
        for directory, subdirectories, files in os.walk(root):
            subdirectories[:] = sorted(d for d in subdirectories if "test" not in d)
            for name in sorted(files):
                if name.endswith(".py") and "test" not in name:
                    path = os.path.join(directory, name)
                    text = _docstrings(path)
                    if text:
                        relative = os.path.relpath(path, os.path.dirname(root))
                        yield f"https://python.invalid/site-packages/{relative}", text


def _docstrings(path: str) -> str:
    return "\n\n".join(file_docstrings(path))


def _module_text(name: str) -> str:
    try:
        module = importlib.import_module(name)
    except Exception:  # pylint: disable=broad-except  (platform-specific modules)
        return ""
    docs = [inspect.getdoc(module) or ""]
    for _, member in sorted(vars(module).items()):
        if getattr(member, "__module__", None) != name:
            continue
        if inspect.isfunction(member):
            docs.append(inspect.getdoc(member) or "")
        elif inspect.isclass(member):
            docs.append(inspect.getdoc(member) or "")
            docs += [inspect.getdoc(method) or "" for _, method in sorted(vars(member).items())
                     if inspect.isfunction(method)]
    return "\n\n".join(doc for doc in docs if doc)


def write_python_docs_wet(path: str, min_paragraphs: int = 1,
                          libraries: Sequence[str] = ()) -> int:
    """Writes the documents as a gzipped WET file (one gzip member per record).

    ``libraries`` adds the docstrings of those installed packages: a corpus
    several times larger, for experiments that should not repeat their data.

    Documents are written in an order fixed by a hash of their URI, mixed like
    the pages of a Common Crawl file: in source order, one pass would be a
    curriculum (the language reference, then one library after another) and a
    validation curve would follow whichever topic is being trained on.

    Returns the number of documents written. Record ids are derived from the
    URI, so the partition and the order are the same on every machine.
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    documents = []
    for uri, text in corpus_documents(libraries):
        paragraphs = prose_paragraphs(text)
        if len(paragraphs) >= min_paragraphs:
            record_id = f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, uri)}>"
            documents.append((record_id, uri, "\n".join(paragraphs)))
    documents.sort()
    tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # never shared by two writers
    with open(tmp, "wb") as out:
        out.write(gzip.compress(warcinfo_record(os.path.basename(path)), compresslevel=6))
        for record_id, uri, text in documents:
            record = frame_record(text, target_uri=uri, record_id=record_id)
            out.write(gzip.compress(record, compresslevel=6))
    os.replace(tmp, path)
    return len(documents)


def corpus_documents(libraries: Sequence[str] = ()) -> Iterator[tuple[str, str]]:
    """Python's documentation, then the docstrings of ``libraries``."""
    yield from python_documents()
    yield from library_documents(libraries)


def prepare(model_dir: str, vocab: str = "", vocab_size: int = 4000,
            libraries: Sequence[str] = ()) -> tuple[str, str]:
    """Writes the demo's WET file and, unless ``vocab`` is given, trains a vocabulary.

    Both land in ``<model_dir>/data/`` and are reused when present, so a rerun
    of the demo resumes instead of starting over. Processes started together
    (one per group) make each file once: the first writes it under a lease, the
    others wait for it (``lease.make_once``). Returns (wet_path, vocab_path).
    """
    import tokenizer as tokenizer_lib
    from tf_codistill.config.files import unique_temporary
    from tf_codistill.utils.lease import make_once

    data_dir = os.path.join(model_dir, "data")
    name = "+".join(["python_docs", *libraries])
    wet_path = os.path.join(data_dir, f"{name}.wet.gz")
    make_once(wet_path, lambda path: write_python_docs_wet(path, libraries=libraries),
              "the demo corpus")
    if vocab:
        return wet_path, vocab
    vocab_path = os.path.join(data_dir, f"{name}_vocab_{vocab_size}.model" if libraries
                              else f"vocab_{vocab_size}.model")

    def train_vocabulary(path):
        documents = ("\n".join(prose_paragraphs(text))
                     for _, text in corpus_documents(libraries))
        tmp = unique_temporary(path)
        tokenizer_lib.train_vocabulary(documents, tmp, vocab_size=vocab_size)
        os.replace(tmp, path)

    make_once(vocab_path, train_vocabulary, "the demo vocabulary")
    return wet_path, vocab_path
