"""Search spaces: YAML schema, validation, and Optuna sampling.

Loading and checking a space imports neither torch nor Optuna (``nasdepth spaces check``
answers in a fraction of a second); sampling takes the ``optuna.Trial`` it is given, and a
parameter budget counts sizes with :func:`nasdepth.arch.config_complexity` when it applies.
"""

from nasdepth.space.budget import Budget
from nasdepth.space.params import Param
from nasdepth.space.space import SearchSpace, load_space

__all__ = ["Budget", "Param", "SearchSpace", "load_space"]
