"""Names used but never defined, found without running the code (pyflakes).

A function whose body names something never imported fails only when that line runs: for the
experiment harness that is at the end of an hour's run, after the arms trained.
"""

import pathlib

import pytest
from pyflakes import api, messages, reporter

REPO = pathlib.Path(__file__).resolve().parents[1]
CHECKED = ("tf_codistill", "tokenizer", "data_pipelines", "experiments", "benchmarks",
           "examples", "tests")
UNDEFINED = (messages.UndefinedName, messages.UndefinedLocal, messages.UndefinedExport)


class _Collector(reporter.Reporter):
    def __init__(self):
        super().__init__(None, None)
        self.found = []

    def flake(self, message):
        if isinstance(message, UNDEFINED):
            self.found.append(str(message))

    def syntaxError(self, filename, msg, lineno, offset, text):  # noqa: N802 (pyflakes' API)
        self.found.append(f"{filename}:{lineno}: {msg}")

    def unexpectedError(self, filename, msg):  # noqa: N802
        self.found.append(f"{filename}: {msg}")


@pytest.mark.parametrize("tree", CHECKED)
def test_every_name_used_is_defined(tree):
    collector = _Collector()
    for path in sorted((REPO / tree).rglob("*.py")):
        api.checkPath(str(path), collector)
    assert not collector.found, "\n".join(collector.found)
