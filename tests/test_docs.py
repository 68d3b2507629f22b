"""The front page and docs/: short, their Python runs as written, every flag they name exists,
and every relative link leads to a file."""

import re
import subprocess
import sys

import pytest
from absl import flags

from tests.helpers.runs import REPO
from tf_codistill.cluster import manifests

README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
# Flags of other tools that the pages' commands use: srun, tensorboard, tfds, pip, pytest.
OTHER_TOOLS = {"ntasks", "distribution", "logdir", "manual_dir", "upgrade"}


def _python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def _package_flags() -> set[str]:
    """The train and launch commands' flags (derived from the config), absl's, and every flag
    a script of the repository defines by name."""
    values = flags.FlagValues()
    manifests.define_flags(values)
    defined = set(values)
    for path in REPO.rglob("*.py"):
        if "tests" not in path.parts and "runs" not in path.parts:
            defined |= set(re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", path.read_text()))
    return defined | _own_task_flags() | {"flagfile", "help", "helpfull", "verbosity"}


def _own_task_flags() -> set[str]:
    """The flags docs/own-task.md's example task adds to the train command."""
    from tf_codistill import config as config_lib
    from tf_codistill import tasks
    task = tasks.task_class("examples.rings_task:RingsTask")
    return {field.name for section in (task.ModelConfig, task.DataConfig)
            for field in config_lib.knobs(section)}


def test_the_front_page_stays_short():
    assert len(README.read_bytes()) <= 8 * 1024


def test_every_flag_the_pages_name_exists():
    known = _package_flags() | OTHER_TOOLS
    named = {(page.name, flag) for page in PAGES
             for flag in re.findall(r"(?<![\w-])--([a-z][a-z0-9_]+)", page.read_text())}
    unknown = sorted((page, flag) for page, flag in named
                     if flag not in known and flag.removeprefix("no") not in known)
    assert not unknown


def test_every_relative_link_leads_to_a_file():
    missing = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            if not (page.parent / target).exists():
                missing.append((page.name, target))
    assert not missing


@pytest.mark.slow
@pytest.mark.parametrize("snippet", _python_blocks(README))
def test_the_front_pages_python_runs_as_written(snippet, tmp_path):
    result = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, env={"PYTHONPATH": str(REPO),
                                                         "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_front_page_has_python_to_run():
    assert _python_blocks(README)


def test_ci_runs_the_front_pages_test_command():
    commands = re.findall(r"```\n(pip install -e \"\.\[test\]\".*)\n```", README.read_text())
    assert len(commands) == 1
    assert commands[0] in (REPO / ".ci" / "run").read_text().splitlines()
