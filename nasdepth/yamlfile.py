"""Reading a YAML file the user wrote (a study, a search space): one line for every way it can
be wrong, naming the file (and the line and column of a syntax error), never a traceback.

``yaml.safe_load`` only: tags such as ``!!python/object`` are refused, nothing is constructed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nasdepth.errors import NasdepthError


def read_yaml(path: str | Path, what: str) -> Any:
    """The parsed content of the YAML file ``path`` (``what``: "study file", "search-space
    file", for the messages)."""
    path = Path(path)
    if path.is_dir():
        raise NasdepthError(f"The {what} {path} is a folder, not a YAML file.")
    if not path.is_file():
        raise NasdepthError(f"The {what} {path} does not exist.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NasdepthError(f"Cannot read the {what} {path}: "
                            f"{exc.strerror or type(exc).__name__}.") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise NasdepthError(f"The {what} {path} is not UTF-8 text (byte {exc.start}, line "
                            f"{line}: {data[exc.start:exc.start + 1]!r}); save it as UTF-8."
                            ) from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "a syntax error"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        raise NasdepthError(f"The {what} {path} is not valid YAML{where}: {problem}{context}."
                            ) from None
    except yaml.YAMLError as exc:
        raise NasdepthError(f"The {what} {path} is not valid YAML: "
                            f"{' '.join(str(exc).split())}") from None
