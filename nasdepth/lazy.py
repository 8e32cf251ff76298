"""Package namespaces whose public names load on first use (PEP 562).

A package ``__init__`` lists ``name -> module`` and gets a module ``__getattr__``: importing
the package (or a light submodule of it, such as ``nasdepth.arch.config``) runs no torch,
scikit-learn or Optuna import until a name that needs one is read. Type checkers see the
names through the package's ``if TYPE_CHECKING:`` imports.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str], parts: Sequence[str] = ()
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose names live in ``exports[name]``;
    ``parts``: its subpackages, reachable as attributes once the package is imported."""

    def __getattr__(name: str) -> Any:
        if name in parts:
            return importlib.import_module(f"{package}.{name}")
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__
