"""The train command's flags, derived from the config's knobs: one definition per setting.

Each field of ``RunConfig``, its shared sections and every built-in task's model
and data sections becomes one absl flag of the same name, with the field's
default, help text and choices. A name two tasks' sections share (``num_classes``,
``hidden_units``, ``train_files``, ``seq_len``) is one flag; where their defaults
differ it defaults to unset, meaning the chosen task's own default. A task of
one's own named on the command line (``--task=package.module:Name``) gets flags for
its sections' knobs too; named in a flagfile, its sections come from --config or
their defaults.

Each flag belongs to a section (``SECTION_TITLES``: run, trainer, codistillation, data,
and one model section per task), under which ``--help`` and ``--helpfull`` list it.
"""

from __future__ import annotations

import dataclasses
import sys
import typing

from absl import flags

from tf_codistill import config as config_lib
from tf_codistill import tasks

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
    for flag in _shared_flags() + _task_flags():
        _define(flag, flag_values)


def config_from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> config_lib.RunConfig:
    """The RunConfig the flags describe (starting from --config when it is given)."""
    kinds = {flag.name: flag.kind for flag in _shared_flags() + _task_flags()}
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

    top = {f.name: value(f.name, getattr(base, f.name))
           for f in config_lib.knobs(config_lib.RunConfig)}
    if top["task"] != base.task:  # another task's sections do not carry over
        base = dataclasses.replace(base, model=None, data=None)
    resolved = tasks.resolve(dataclasses.replace(base, **top))
    _check_task_flags_belong_to(resolved, flag_values)

    def given_value(name, current):
        """A task's own defaults stand unless its flag is given (a task of one's own may
        have settings no flag names)."""
        return value(name, current) if name in kinds and flag_values[name].present else current

    return dataclasses.replace(
        resolved, **{key: _replaced(getattr(resolved, key), value)
                     for key in config_lib.SECTIONS},
        **{key: _replaced(getattr(resolved, key), given_value)
           for key in config_lib.TASK_SECTIONS})


def _check_task_flags_belong_to(config: config_lib.RunConfig, flag_values) -> None:
    """A model or data flag of another task would be silently ignored: refuse it instead
    (after checking its value, which is wrong whatever the task)."""
    mine = {f.name for key in config_lib.TASK_SECTIONS
            for f in config_lib.knobs(type(getattr(config, key)))}
    for flag in _task_flags():
        if flag_values[flag.name].present and flag.name not in mine:
            for field in _fields_named(flag.name):
                config_lib.check_value(field, flag_values[flag.name].value)
            key, owners = next((key, owners[flag.name]) for key, owners in
                               ((key, _owners(key)) for key in config_lib.TASK_SECTIONS)
                               if flag.name in owners)
            raise config_lib.ConfigError(
                f"--{flag.name} sets the {key} of --task={'|'.join(sorted(owners))}, not of "
                f"--task={config.task}; drop it (--help lists --task={config.task}'s flags "
                f"under its {key}).")


def _fields_named(name: str) -> list:
    """The built-in tasks' section fields called ``name``."""
    return [field for key in config_lib.TASK_SECTIONS for task in tasks.TASKS
            for field in config_lib.knobs(_section_class(task, key)) if field.name == name]


def _owners(key: str) -> dict[str, set[str]]:
    """{flag name: the built-in tasks whose ``key`` section ("model" or "data") has it}."""
    owners: dict[str, set[str]] = {}
    for task in tasks.TASKS:
        for field in config_lib.knobs(_section_class(task, key)):
            owners.setdefault(field.name, set()).add(task)
    return owners


def _section_class(task: str, key: str) -> type:
    cls = tasks.task_class(task)
    return cls.ModelConfig if key == "model" else cls.DataConfig


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
    sections[SECTION_TITLES["data"]] = [help_flag(flag) for flag in _task_flags()
                                        if flag.sections == (SECTION_TITLES["data"],)]
    for task in sorted(tasks.TASKS):
        section = tasks.task_class(task).ModelConfig
        sections[model_section_title(task)] = [
            help_flag(_flag_of(section, field)) for field in config_lib.knobs(section)]
    return sections


def _shared_flags() -> list[_Flag]:
    sections = [(RUN_SECTION, config_lib.RunConfig)] + [
        (SECTION_TITLES[key], section) for key, section in config_lib.SECTIONS.items()]
    shared = [_flag_of(section, field, title) for title, section in sections
              for field in config_lib.knobs(section)]
    return shared


def _section_title(key: str, task: str) -> str:
    """The model flags are listed per task; the data flags together."""
    return model_section_title(task) if key == "model" else SECTION_TITLES["data"]


def _task_flags() -> list[_Flag]:
    """One flag per name over the model and data sections of the built-in tasks and of a
    task of one's own named on the command line."""
    by_name: dict[str, list[tuple[str, _Flag]]] = {}
    for key in config_lib.TASK_SECTIONS:
        for task in sorted(tasks.TASKS) + _own_task_on_command_line():
            section = _section_class(task, key)
            for field in config_lib.knobs(section):
                flag = _flag_of(section, field, _section_title(key, task))
                by_name.setdefault(field.name, []).append((task, flag))
    merged = []
    for name, definitions in by_name.items():
        first = definitions[0][1]
        same_default = all(f.default == first.default for _, f in definitions)
        if all(f.help == first.help for _, f in definitions) and same_default:
            first.help = f"--task={'|'.join(task for task, _ in definitions)}: {first.help}"
        else:
            first.help = " ".join(f"--task={task}: {f.help} (default {f.default!r})."
                                  for task, f in definitions)
        first.default = first.default if same_default else None
        first.sections = tuple(dict.fromkeys(f.sections[0] for _, f in definitions))
        merged.append(first)
    return merged


def _own_task_on_command_line(argv=None) -> list[str]:
    """[the --task=package.module:Name given on the command line], if it resolves; [] else
    (one that does not resolve is named when the flags are read)."""
    argv = sys.argv[1:] if argv is None else argv
    given = [arg.split("=", 1)[1] for arg in argv if arg.startswith("--task=")]
    given += [value for flag, value in zip(argv, argv[1:]) if flag == "--task"]
    if not given or ":" not in given[-1]:
        return []
    try:
        tasks.task_class(given[-1])
    except config_lib.ConfigError:
        return []
    return given[-1:]


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
