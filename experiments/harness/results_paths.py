"""Paths in a results JSON, relative to the repository.

A committed result names ``experiments/results/x.json`` or ``configs/x.flags``, not the
checkout that wrote it (the scripts' defaults are joined to their own checkout). Paths
outside the repository (a run root, a data directory) stay as the command was given them.
"""

from __future__ import annotations

import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_FLAG = re.compile(r"(--[\w.-]+=)(.*)", re.DOTALL)


def repo_relative(value, repo: str = REPO):
    """``value`` (a results JSON's dicts, lists and strings) with every absolute path inside
    ``repo``, a whole string or a ``--flag=`` value, written relative to it; keys too.
    Other strings (a command line as typed, a path elsewhere) are left as they are."""
    if isinstance(value, dict):
        return {repo_relative(k, repo): repo_relative(v, repo) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [repo_relative(v, repo) for v in value]
    if isinstance(value, str):
        flag = _FLAG.fullmatch(value)
        return flag[1] + _inside(flag[2], repo) if flag else _inside(value, repo)
    return value


def _inside(path: str, repo: str) -> str:
    if not os.path.isabs(path):
        return path
    relative = os.path.relpath(path, repo)
    return path if relative == os.pardir or relative.startswith(os.pardir + os.sep) else relative
