"""Reading a YAML file the user wrote (a study, a search space): one line for every way it can
be wrong, naming the file (and the line and column of a syntax error), never a traceback.

``yaml.safe_load`` only: tags such as ``!!python/object`` are refused, nothing is constructed.

Bounded: a file over :data:`MAX_BYTES`, nesting deeper than :data:`MAX_DEPTH`, or aliases that
expand to more than :data:`MAX_NODES` values (a "billion laughs" file of 500 bytes: ``&a`` ten
times ``*b`` ...) is refused from the parsed node graph, before any value is built, so no
message or later step (a stored copy, a digest) can expand it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nasdepth.errors import NasdepthError

MAX_BYTES = 4 * 2**20
MAX_DEPTH = 64
MAX_NODES = 200_000


def existing_file(path: str | Path, what: str) -> Path:
    """``path`` where it is a file, else one line saying it is a folder or missing (the CLI
    asks before its heavy imports)."""
    path = Path(path)
    if path.is_dir():
        raise NasdepthError(f"The {what} {path} is a folder, not a YAML file.")
    if not path.is_file():
        raise NasdepthError(f"The {what} {path} does not exist.")
    return path


def read_yaml(path: str | Path, what: str) -> Any:
    """The parsed content of the YAML file ``path`` (``what``: "study file", "search-space
    file", for the messages)."""
    path = existing_file(path, what)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise NasdepthError(f"The {what} {path} is {path.stat().st_size} bytes; a {what} "
                                f"is at most {MAX_BYTES} bytes.")
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
    return parse_yaml(text, f"The {what} {path}")


def parse_yaml(text: str, where: str) -> Any:
    """``text`` parsed as YAML (bounded as above); ``where`` starts every message ("The study
    file x.yaml", "--arch"): one line, never a traceback."""
    if len(text) > MAX_BYTES:
        raise NasdepthError(f"{where} is {len(text)} characters; at most {MAX_BYTES}.")
    try:
        return _load_bounded(text, where)
    except RecursionError:
        raise NasdepthError(f"{where} nests deeper than {MAX_DEPTH} levels.") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "a syntax error"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        raise NasdepthError(f"{where} is not valid YAML{at}: {problem}{context}.") from None
    except yaml.YAMLError as exc:
        raise NasdepthError(f"{where} is not valid YAML: {' '.join(str(exc).split())}"
                            ) from None

def _expanded_size(node: yaml.Node, depth: int, memo: dict[int, int], open_: set[int],
                   where: str) -> int:
    """How many values ``node`` stands for with every alias expanded (shared nodes counted
    once per use, computed once each); refuses cycles, depth and size beyond the limits."""
    key = id(node)
    if key in memo:
        return memo[key]
    if depth > MAX_DEPTH:
        raise NasdepthError(f"{where} nests deeper than {MAX_DEPTH} levels.")
    if key in open_:
        raise NasdepthError(f"{where} holds an alias that refers to itself (a recursive "
                            "structure); write the value out.")
    total = 1
    if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)):
        open_.add(key)
        children = node.value if isinstance(node, yaml.SequenceNode) else [
            n for pair in node.value for n in pair]
        for child in children:
            total += _expanded_size(child, depth + 1, memo, open_, where)
            if total > MAX_NODES:
                raise NasdepthError(f"{where} expands to more than {MAX_NODES} values through "
                                    "its aliases (*name); a study or space file is far "
                                    "smaller. Write the values out or remove the aliases.")
        open_.discard(key)
    memo[key] = total
    return total


def _load_bounded(text: str, where: str) -> Any:
    """``yaml.safe_load(text)``, with the node graph measured before anything is built."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, 0, {}, set(), where)
        return loader.construct_document(node)
    finally:
        loader.dispose()
