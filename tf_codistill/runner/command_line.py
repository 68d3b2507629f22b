"""The manners every command shares: a quiet start, help by section, usage errors as one line.

An entry point calls ``prepare_process()`` before anything imports TensorFlow, then
``run(main, sections)`` in place of ``absl.app.run``:

- TensorFlow's start-up lines (the oneDNN notice, "Could not find cuda drivers", the
  failed cuInit of a CPU machine) are dropped. TensorFlow 2.21 writes them through
  C++ logging before its log level applies, so they are filtered out of the
  process's stderr while TensorFlow loads. A ``TF_CPP_MIN_LOG_LEVEL`` the user set
  wins: then nothing is filtered.
- ``--help`` lists the command's own flags by section, one line each; ``--helpfull``
  gives their whole help, then absl's and TensorFlow's flags.
- TensorFlow's Python log lines are off below ERROR unless ``--verbosity`` is given.
- A flag that does not parse, a flagfile that is missing and any ``UsageError`` print
  one ``error:`` line and exit 2 (``EXIT_USAGE``).
- ``--flagfile=configs/<name>`` finds a shipped config from any directory: a file at
  that path (from the working directory) wins, else the installed package's copy.

This module imports neither TensorFlow nor the package's TensorFlow code at load time.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import re
import sys
import tempfile
import textwrap
from typing import Callable, NamedTuple

EXIT_USAGE = 2
LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
QUIET_LEVEL = "2"  # TensorFlow's INFO and WARNING lines off, errors kept
CONFIGS_DIR = "configs"
FLAGFILE_FORMS = ("--flagfile", "-flagfile")
HELP_FLAGS = ("--help", "-h", "-?", "--helpshort")
HELPFULL_FLAG = "--helpfull"
WIDTH = 100

# C++ log lines: severity letter, date, time, thread, file:line]
_CPP_LOG_LINE = re.compile(r"^([IWEF])\d{4} [\d:. ]+\d+ [\w./-]+:\d+\] ")
_UNINITIALIZED_LOG = "WARNING: All log messages before absl::InitializeLog() is called"
_NO_GPU = ("cuInit", "cuda drivers", "CUDA error")
_CPU_FEATURES_SECOND_LINE = "To enable the following instructions:"  # after cpu_feature_guard


class UsageError(Exception):
    """Input the command cannot use; the message says what to pass instead."""


class HelpFlag(NamedTuple):
    """One line of ``--help``."""

    name: str
    default: object
    help: str
    is_bool: bool = False


def flags_of_module(module: str) -> list[HelpFlag]:
    """--help lines of the flags absl registered under ``module`` (a module or section name)."""
    from absl import flags
    return [HelpFlag(f.name, f.default, f.help, f.boolean)
            for f in flags.FLAGS.get_flags_for_module(module)]


def prepare_process() -> None:
    """tf_keras for tf.keras, malloc arenas capped, TensorFlow loaded without its start-up noise.

    Call it before anything imports TensorFlow.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from tf_codistill.utils.allocator import cap_malloc_arenas
    cap_malloc_arenas()  # before TensorFlow's thread pools exist (utils/allocator.py)
    if LOG_LEVEL in os.environ:  # the user's level wins
        return
    # The level TensorFlow reads while it loads stays for the process; it is not exported,
    # so the processes this one starts make the same choice for themselves.
    os.environ[LOG_LEVEL] = QUIET_LEVEL
    try:
        with _stderr_filtered(is_startup_noise):
            import tensorflow as tf
            tf.config.list_physical_devices()  # where a CPU machine logs its failed cuInit
    finally:
        del os.environ[LOG_LEVEL]


def is_startup_noise(line: str) -> bool:
    """TensorFlow's C++ INFO and WARNING lines, absl's notice, and a missing GPU's errors."""
    if line.startswith((_UNINITIALIZED_LOG, _CPU_FEATURES_SECOND_LINE)):
        return True
    match = _CPP_LOG_LINE.match(line)
    if not match:
        return False
    return match.group(1) in "IW" or any(word in line for word in _NO_GPU)


@contextlib.contextmanager
def _stderr_filtered(is_noise: Callable[[str], bool]):
    """Captures file descriptor 2 (C++ writes there too) and replays what is not noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace")
                    .splitlines(keepends=True) if not is_noise(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def fail(message: str) -> None:
    """Prints ``error: message`` once and exits 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)


def run(main: Callable[[list[str]], None], sections: Callable[[], dict]) -> None:
    """``absl.app.run`` with the command's help, its flagfile lookup and one-line errors.

    ``sections`` returns {section title: [HelpFlag, ...]}, in the order ``--help`` lists them.
    """
    from absl import app

    def parse(argv):
        return parse_flags(argv, sections)

    def guarded(argv):
        _quiet_python_logs()
        try:
            main(argv)
        except UsageError as error:
            fail(str(error))

    app.run(guarded, flags_parser=parse)


def _quiet_python_logs() -> None:
    """Warnings and errors of our own; TensorFlow's Python-side chatter (slow-callback and
    compiled-metrics notices, each printed twice through absl) only with --verbosity."""
    from absl import flags, logging
    if flags.FLAGS["verbosity"].present:
        return
    logging.set_verbosity(logging.WARNING)
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")


def parse_flags(argv: list[str], sections: Callable[[], dict]) -> list[str]:
    """Parses argv into absl's FLAGS; help exits 0, a usage error exits 2."""
    from absl import flags
    arguments = argv[1:]
    if HELPFULL_FLAG in arguments:
        print(full_help(sections()))
        sys.exit(0)
    if any(argument in HELP_FLAGS for argument in arguments):
        print(short_help(sections()))
        sys.exit(0)
    try:
        return flags.FLAGS([argv[0], *resolve_flagfiles(arguments)])
    except UsageError as error:
        fail(str(error))
    except flags.Error as error:
        fail(_flag_error(error))


def resolve_flagfiles(arguments: list[str]) -> list[str]:
    """Points every ``--flagfile`` of the command line at a file that exists, or refuses it."""
    resolved = []
    for argument in arguments:
        if resolved and resolved[-1] in FLAGFILE_FORMS:  # --flagfile FILE
            argument = flagfile_path(argument)
        elif argument.startswith(tuple(f"{form}=" for form in FLAGFILE_FORMS)):
            form, path = argument.split("=", 1)
            argument = f"{form}={flagfile_path(path)}"
        resolved.append(argument)
    return resolved


def flagfile_path(path: str) -> str:
    """``path`` if it exists, else the shipped config it names (``configs/<name>``)."""
    if os.path.exists(path):
        return path
    shipped = shipped_config(path)
    if shipped is not None:
        return shipped
    names = ", ".join(shipped_configs())
    raise UsageError(
        f"--flagfile={path}: no such file (relative paths start from the working directory, "
        f"{os.getcwd()}). The shipped configs work from any directory as "
        f"--flagfile={CONFIGS_DIR}/<name>: {names}.")


def shipped_configs_dir() -> str:
    """The configs/ installed with the package (a link to the repository's configs/)."""
    return str(importlib.resources.files("tf_codistill") / CONFIGS_DIR)


def shipped_configs() -> list[str]:
    """The names of the shipped flagfiles."""
    directory = shipped_configs_dir()
    if not os.path.isdir(directory):
        return []
    return sorted(name for name in os.listdir(directory) if name.endswith(".flags"))


def shipped_config(path: str) -> str | None:
    """The installed copy of ``configs/<name>``, if the package ships one."""
    head, name = os.path.split(os.path.normpath(path))
    if head != CONFIGS_DIR or name not in shipped_configs():
        return None
    return os.path.join(shipped_configs_dir(), name)


def _flag_error(error: Exception) -> str:
    message = " ".join(str(error).split()).removeprefix("ERROR:: ")
    if "Unable to open flagfile" in message:  # one named inside another flagfile
        return (f"{message}. A flagfile named inside another is read from the working "
                f"directory, {os.getcwd()}.")
    if message.startswith("Unknown command line flag"):
        message = re.sub(r"\. Did you mean: (.+?) ?\?$", lambda m: " (did you mean " + ", ".join(
            f"--{name.strip()}" for name in m.group(1).split(",")) + "?)", message)
        return f"{message}; --help lists the flags."
    return message


def short_help(sections: dict) -> str:
    """The command's docstring summary, then each section's flags, one line each."""
    lines = [_usage()]
    for title, section_flags in sections.items():
        lines += ["", f"{title}:"]
        lines += [_one_line(flag) for flag in section_flags]
    lines += ["", "--flagfile=FILE reads flags from FILE (later flags win). --helpfull: every "
              "flag's whole help, and absl's and TensorFlow's flags."]
    return "\n".join(lines)


def full_help(sections: dict) -> str:
    """Every section's flags with their whole help, then the flags of absl and TensorFlow."""
    from absl import flags
    ours = list(sections)
    others = sorted(m for m in flags.FLAGS.flags_by_module_dict() if m not in ours)
    body = "".join(flags.FLAGS.module_help(module) for module in ours + others)
    return f"{_usage()}\n{body}"


def _usage() -> str:
    """The command's docstring: what it does and how it is called."""
    return (sys.modules["__main__"].__doc__ or "").strip()


def _one_line(flag: HelpFlag) -> str:
    name = f"--[no]{flag.name}" if flag.is_bool else f"--{flag.name}"
    default = _shown_default(flag.default)
    left = f"  {name}" + (f"={default}" if default and not flag.is_bool else "")
    left = f"{left:<36}" if len(left) < 36 else left + " "
    summary = _first_sentence(flag.help)
    return left + textwrap.shorten(summary, max(WIDTH - len(left), 20), placeholder="...")


def _shown_default(default) -> str:
    if default is None or default == "" or default == () or default is False:
        return ""
    if isinstance(default, (list, tuple)):
        return ",".join(str(v) for v in default)
    return str(default)


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    match = re.search(r"(?<=[a-z0-9)]{2})\. ", text)  # not after "e.g."
    return text[:match.start() + 1] if match else text
