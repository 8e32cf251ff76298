"""One error type for everything a user can get wrong, with one message template.

scikit-learn style: ``The 'folds' value in studies/x.yaml must be an int >= 2. Got 1.``
The CLI turns a :class:`NasdepthError` into one line on stderr and exit status 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class NasdepthError(ValueError):
    """An error caused by the user's input (a file, a key, a value), not by a bug."""


def closest(name: str, valid: Iterable[str]) -> str | None:
    """The valid name closest to ``name`` (for "did you mean"), or None when none is close."""
    matches = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.5)
    return matches[0] if matches else None


class ConfigError(NasdepthError):
    """A bad value for one key of one source (a file path, a data spec, a function argument)."""

    def __init__(self, source: str, key: str, value: Any, allowed: str) -> None:
        self.source, self.key, self.value, self.allowed = source, key, value, allowed
        super().__init__(f"The '{key}' value in {source} must be {allowed}. Got {value!r}.")


class UnknownNameError(ConfigError):
    """A name that is not in a registry; the message lists the valid names and the closest."""

    def __init__(self, source: str, key: str, value: Any, valid: Iterable[str]) -> None:
        valid = sorted(str(v) for v in valid)
        super().__init__(source, key, value, "one of " + ", ".join(valid))
        self.valid = valid
        self.suggestion = closest(str(value), valid)
        if self.suggestion is not None:
            self.args = (f"{self.args[0]} Did you mean '{self.suggestion}'?",)


def check_section(spec: Any, source: str, key: str, valid: Iterable[str], expected: str
            ) -> dict[str, Any]:
    """``spec``, the ``key`` section of ``source``, checked to be a mapping (else a
    :class:`ConfigError` saying ``expected``) whose keys are all in ``valid`` (else an
    :class:`UnknownNameError` naming ``key.<name>`` and the closest valid one)."""
    if not isinstance(spec, dict):
        raise ConfigError(source, key, spec, expected)
    valid = list(valid)
    for name in spec:
        if name not in valid:
            raise UnknownNameError(source, f"{key}.{name}", name, valid)
    return spec


def check_int(value: Any, source: str, key: str, low: int, allowed: str = "") -> int:
    """``value`` where it is an int (not a bool) >= ``low``, else a :class:`ConfigError`
    saying ``allowed`` (default: an int >= ``low``)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(source, key, value, allowed or f"an int >= {low}")
    return value


def check_bool(value: Any, source: str, key: str) -> bool:
    """``value`` where it is true or false, else a :class:`ConfigError`."""
    if not isinstance(value, bool):
        raise ConfigError(source, key, value, "true or false")
    return value
