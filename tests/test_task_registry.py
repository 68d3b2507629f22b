"""The task registry: built-in names, a task of one's own as package.module:Name, and
the errors that say what to fix."""

import sys
import textwrap

import pytest

from tests.test_config import parse
from tf_codistill import config as config_lib
from tf_codistill import tasks
from tf_codistill.tasks.clusters import ClustersTask

OWN_TASK = '''
import dataclasses

from tf_codistill.config import AT_LEAST_1, knob
from tf_codistill.tasks.clusters import ClustersTask


@dataclasses.dataclass(frozen=True)
class Model:
    hidden_units: tuple = knob((4,), "Widths.")
    num_classes: int = knob(8, "Classes.", valid=AT_LEAST_1)


@dataclasses.dataclass(frozen=True)
class Data:
    rows: int = knob(3, "Rows of my data.", valid=AT_LEAST_1)


class MyTask(ClustersTask):
    ModelConfig = Model
    DataConfig = Data


class NotATask:
    pass


class Unfinished(ClustersTask.__mro__[1]):  # the bare Task
    pass
'''


@pytest.fixture
def own_module(tmp_path, monkeypatch):
    (tmp_path / "my_tasks.py").write_text(textwrap.dedent(OWN_TASK))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_tasks"


def test_built_in_names_resolve_to_their_classes():
    assert tasks.task_class("clusters") is ClustersTask


def test_a_task_of_ones_own_resolves_by_module_and_name_with_its_sections(own_module):
    config = tasks.resolve(config_lib.RunConfig(task=f"{own_module}:MyTask"))
    assert type(config.model).__name__ == "Model" and config.data.rows == 3
    config_lib.check(config)
    task = tasks.get_task(config)
    assert type(task).__name__ == "MyTask"


def test_the_train_flags_take_a_task_of_ones_own(own_module):
    config = parse(f"--task={own_module}:MyTask", "--hidden_units=5,6")
    assert config.model.hidden_units == (5, 6) and config.data.rows == 3
    with pytest.raises(config_lib.ConfigError, match="--units sets the model of"):
        parse(f"--task={own_module}:MyTask", "--units=5")


@pytest.mark.parametrize("name, message", [
    ("nonesuch", r"--task=nonesuch: value should be one of .*package.module:ClassName"),
    ("no_such_module_here:X", r"module 'no_such_module_here' does not import .*PYTHONPATH"),
    ("{own}:Missing", r"module 'my_tasks' has no 'Missing'"),
    ("{own}:NotATask", r"my_tasks.NotATask is not a Task; subclass tf_codistill.tasks.base"),
    ("{own}:Unfinished", r"does not implement build_model, train_dataset, eval_dataset"),
    (":MyTask", r"package.module:ClassName"),
])
def test_a_task_that_cannot_be_used_is_a_config_error_saying_what_to_fix(
        own_module, name, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        tasks.task_class(name.format(own=own_module))


@pytest.mark.parametrize("source, task, message", [
    ("import no_such_dependency.io\n", "unimportable_tasks:T",
     r"module 'unimportable_tasks' does not import because it imports 'no_such_dependency', "
     r"which is not installed; install it \(pip install no_such_dependency, or"),
    ("", "no_such_package.tasks:T",  # the task's own package is not on the path
     r"module 'no_such_package.tasks' does not import \(No module named 'no_such_package'\); "
     r"put its directory on PYTHONPATH"),
    ("import unimportable_tasks.helpers\n", "unimportable_tasks:T",  # its own, not there
     r"does not import \(ModuleNotFoundError: No module named 'unimportable_tasks.helpers'"
     r".*\); fix what its import raises"),
], ids=["a dependency is missing", "the task's package is not found",
        "a module of its own package is missing"])
def test_a_task_module_that_does_not_import_says_whether_to_install_or_fix_the_path(
        tmp_path, monkeypatch, source, task, message):
    (tmp_path / "unimportable_tasks.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "unimportable_tasks", raising=False)
    with pytest.raises(config_lib.ConfigError, match=message) as refused:
        tasks.task_class(task)
    assert ("PYTHONPATH" in str(refused.value)) == ("no_such_package" in task)


def test_a_section_of_another_class_is_refused_naming_the_right_one():
    with pytest.raises(config_lib.ConfigError, match="config.model is Data.*ClustersModelSection"):
        tasks.resolve(config_lib.RunConfig(task="clusters", model=type("Data", (), {})()))
