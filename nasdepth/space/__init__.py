"""Search spaces and study files: YAML schema, validation, and Optuna sampling."""

from nasdepth.space.budget import Budget, complexity
from nasdepth.space.params import Param
from nasdepth.space.space import SearchSpace, load_space
from nasdepth.space.study_file import StudyConfig, load_study

__all__ = ["Budget", "Param", "SearchSpace", "StudyConfig", "complexity", "load_space",
           "load_study"]
