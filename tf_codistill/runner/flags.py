"""The train command's flags, derived from the config's knobs: one definition per setting.

Each field of ``RunConfig``, its shared sections and every task's model section
becomes one absl flag of the same name, with the field's default, help text and
choices. A name two tasks' model sections share (``num_classes``, ``hidden_units``,
``embedding_dim``) is one flag; where their defaults differ it defaults to unset,
meaning the chosen task's own default.

Each flag belongs to a section (``SECTION_TITLES``: run, trainer, codistillation, data,
and one model section per task), under which ``--help`` and ``--helpfull`` list it.
"""

from __future__ import annotations

import dataclasses
import typing

from absl import flags

from tf_codistill.runner import config as config_lib
from tf_codistill.tasks import TASKS, task_class

CONFIG_FLAG = "config"
CLOSING_SUMMARY_FLAG = "closing_summary"
RUN_SECTION = "run"
SECTION_TITLES = {"trainer": "trainer", "codistill": "codistillation", "data": "data"}


def model_section_title(task: str) -> str:
    return f"model of --task={task}"


@dataclasses.dataclass
class _Flag:
    name: str
    kind: type
    default: object
    help: str
    choices: object
    sections: tuple[str, ...] = (RUN_SECTION,)  # where help lists it: one, or each task's


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines every knob as a flag, plus --config (a resolved config file to start from)."""
    flags.DEFINE_string(CONFIG_FLAG, "", "A resolved run config (a group's config.json, or "
                        "the file the local launcher writes) to start from; flags given "
                        "with it override its values.", flag_values=flag_values,
                        module_name=RUN_SECTION)
    flags.DEFINE_bool(CLOSING_SUMMARY_FLAG, True, "End by printing what the run got and where "
                      "its outputs are; the local launcher turns it off in the groups it "
                      "starts and prints the whole run's.", flag_values=flag_values,
                      module_name=RUN_SECTION)
    for flag in _shared_flags() + _model_flags():
        _define(flag, flag_values)


def config_from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> config_lib.RunConfig:
    """The RunConfig the flags describe (starting from --config when it is given)."""
    kinds = {flag.name: flag.kind for flag in _shared_flags() + _model_flags()}
    if flag_values[CONFIG_FLAG].value:
        base = config_lib.read(flag_values[CONFIG_FLAG].value)
        given = {name for name in kinds if flag_values[name].present}
    else:
        base, given = config_lib.RunConfig(), set(kinds)

    def value(name, current):
        if name not in given or flag_values[name].value is None:
            return current
        try:
            return _converted(flag_values[name].value, kinds[name])
        except ValueError:
            raise config_lib.ConfigError(
                f"--{name}={','.join(flag_values[name].value)}: every item must be "
                f"{typing.get_args(kinds[name])[0].__name__}, e.g. --{name}=100,200.") from None

    task = value("task", base.task)
    model_type = config_lib.model_section(task)
    _check_model_flags_belong_to(task, model_type, flag_values)
    model = base.model if isinstance(base.model, model_type) else model_type()
    return config_lib.RunConfig(
        **{f.name: value(f.name, getattr(base, f.name))
           for f in config_lib.knobs(config_lib.RunConfig)},
        **{key: _replaced(getattr(base, key), value) for key in config_lib.SECTIONS},
        model=_replaced(model, value))


def _check_model_flags_belong_to(task: str, model_type: type, flag_values) -> None:
    """A model flag of another task would be silently ignored: refuse it instead."""
    mine = {f.name for f in config_lib.knobs(model_type)}
    for flag in _model_flags():
        if flag_values[flag.name].present and flag.name not in mine:
            owners = [t for t in sorted(TASKS) if flag.name in
                      {f.name for f in config_lib.knobs(task_class(t).ModelConfig)}]
            raise config_lib.ConfigError(
                f"--{flag.name} sets the model of --task={'|'.join(owners)}, not of "
                f"--task={task}; drop it (--help lists --task={task}'s flags under its model).")


def _replaced(section, value):
    return dataclasses.replace(section, **{
        f.name: value(f.name, getattr(section, f.name)) for f in config_lib.knobs(type(section))})


def _converted(flag_value, kind: type):
    """List flags become tuples of the field's item type."""
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        return tuple(item(v) for v in flag_value)
    return flag_value


def help_sections() -> dict:
    """{section title: [HelpFlag]} for --help: the run, trainer, codistillation and data
    sections, then each task's model section (a flag two tasks share is in both, with
    each task's own help and default). The run section ends with the flags the command
    itself defined there."""
    from tf_codistill.runner.command_line import HelpFlag, flags_of_module

    def help_flag(flag: _Flag):
        return HelpFlag(flag.name, flag.default, flag.help, flag.kind is bool)

    sections: dict[str, list] = {}
    for flag in _shared_flags():
        sections.setdefault(flag.sections[0], []).append(help_flag(flag))
    knob_names = {flag.name for flag in _shared_flags()}
    sections[RUN_SECTION] += [flag for flag in flags_of_module(RUN_SECTION)
                              if flag.name not in knob_names]
    for task in sorted(TASKS):
        section = task_class(task).ModelConfig
        sections[model_section_title(task)] = [
            help_flag(_flag_of(section, field)) for field in config_lib.knobs(section)]
    return sections


def _shared_flags() -> list[_Flag]:
    sections = [(RUN_SECTION, config_lib.RunConfig)] + [
        (SECTION_TITLES[key], section) for key, section in config_lib.SECTIONS.items()]
    shared = [_flag_of(section, field, title) for title, section in sections
              for field in config_lib.knobs(section)]
    for flag in shared:
        if flag.name == "task":  # the task registry, not the config, knows the tasks
            flag.choices = sorted(TASKS)
    return shared


def _model_flags() -> list[_Flag]:
    by_name: dict[str, list[tuple[str, _Flag]]] = {}
    for task in sorted(TASKS):
        section = task_class(task).ModelConfig
        for field in config_lib.knobs(section):
            flag = _flag_of(section, field, model_section_title(task))
            by_name.setdefault(field.name, []).append((task, flag))
    merged = []
    for name, definitions in by_name.items():
        if len(definitions) == 1:
            task, flag = definitions[0]
            flag.help = f"--task={task}: {flag.help}"
            merged.append(flag)
            continue
        first = definitions[0][1]
        same_default = all(f.default == first.default for _, f in definitions)
        first.help = " ".join(f"--task={task}: {f.help} (default {f.default!r})."
                              for task, f in definitions)
        first.default = first.default if same_default else None
        first.sections = tuple(model_section_title(task) for task, _ in definitions)
        merged.append(first)
    return merged


def _flag_of(section: type, field: dataclasses.Field, title: str = RUN_SECTION) -> _Flag:
    kind = typing.get_type_hints(section)[field.name]
    return _Flag(field.name, kind, field.default, field.metadata["help"],
                 field.metadata["choices"], (title,))


def _define(flag: _Flag, flag_values) -> None:
    kind, default = flag.kind, flag.default
    where = dict(flag_values=flag_values, module_name=flag.sections[0])
    if typing.get_origin(kind) is tuple:
        default = None if default is None else [str(v) for v in default]
        flags.DEFINE_list(flag.name, default, flag.help, **where)
    elif kind is bool:
        flags.DEFINE_bool(flag.name, default, flag.help, **where)
    elif kind is int:
        flags.DEFINE_integer(flag.name, default, flag.help, **where)
    elif kind is float:
        flags.DEFINE_float(flag.name, default, flag.help, **where)
    elif flag.choices is not None:
        flags.DEFINE_enum(flag.name, default, list(flag.choices), flag.help, **where)
    else:
        flags.DEFINE_string(flag.name, default, flag.help, **where)
    for title in flag.sections[1:]:  # a model flag two tasks share: listed under both
        flag_values.register_flag_by_module(title, flag_values[flag.name])
