"""Search spaces: YAML schema, validation, and Optuna sampling."""

from nasdepth.arch import config_complexity as complexity  # (params, flops) of a config
from nasdepth.space.budget import Budget
from nasdepth.space.params import Param
from nasdepth.space.space import SearchSpace, load_space

__all__ = ["Budget", "Param", "SearchSpace", "complexity", "load_space"]
