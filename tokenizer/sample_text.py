"""Offline English sample documents: docstrings of the Python standard library.

For smoke tests, demos and benchmarks on machines with no crawl at hand. Read with `ast` from
the source files (no module is imported), in sorted order, so the text is the same on every run
with the same Python version.
"""
from __future__ import annotations

import ast
import os
import sysconfig
from typing import Iterator


def stdlib_docstrings(max_chars: int = 1_000_000, min_chars: int = 200) -> Iterator[str]:
    """Docstrings of at least `min_chars` characters, up to `max_chars` in total.

    Each docstring is one document; its lines are its paragraphs.
    """
    total = 0
    for path in _stdlib_sources():
        for doc in file_docstrings(path):
            if len(doc) < min_chars:
                continue
            yield doc
            total += len(doc)
            if total >= max_chars:
                return


def _stdlib_sources() -> Iterator[str]:
    root = sysconfig.get_paths()["stdlib"]
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories
                                   if d not in ("site-packages", "test", "tests", "idlelib"))
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(directory, name)


def file_docstrings(path: str) -> Iterator[str]:
    """The docstrings of one Python source file, parsed (never imported)."""
    try:
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read())
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                yield doc
