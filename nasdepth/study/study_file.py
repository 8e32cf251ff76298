"""``StudyConfig``: a study YAML (data, space, cv, training, budget, sampler, pruner,
objectives, constraints, storage, seed, diagnosis).

Names of samplers and pruners are checked against the registries of
:mod:`nasdepth.study.registry`.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasdepth.data import CVConfig
from nasdepth.errors import ConfigError, UnknownNameError, check_bool, check_int, check_section
from nasdepth.outpath import resolve_path
from nasdepth.space.recipe import momentum_conflict, training_conflicts
from nasdepth.space.space import SearchSpace, load_space
from nasdepth.study.names import check_name
from nasdepth.study.registry import check_pruner, check_sampler
from nasdepth.study.tasks_file import SEARCHED, TaskSettings, parse_tasks
from nasdepth.train import LOWER_IS_BETTER, METRICS, TrainConfig
from nasdepth.yamlfile import read_yaml

if TYPE_CHECKING:
    from nasdepth.study.transfer import TransferSection

STUDY_KEYS = {"name", "description", "data", "space", "cv", "training", "budget", "seed",
              "storage", "objective", "objectives", "sampler", "pruner", "constraints",
              "diagnosis", "enqueue", "tasks", "transfer", "screen"}
DIAGNOSIS_KEYS = {"baseline", "controls", "on", "reference", "reference_budget"}
#: the costly controls of nasdepth.diagnosis.CONTROLS (named here so that reading a study file
#: does not import torch; a test keeps the two lists equal)
SCREEN_MODES = ("auto", "on", "off")
STUDY_CONTROLS = ("shuffled", "counterfactual", "learning_curve")
#: which trials get a study's costly controls: plateaus (no skill, gradients fine), every
#: trial not diagnosed healthy, or every trial
DIAGNOSIS_ON = ("plateau", "unhealthy", "all")
BUDGET_KEYS = {"trials", "timeout"}
STORAGE_KEYS = {"url", "heartbeat_interval", "grace_period", "max_retry"}
#: cost objectives, always minimized; CV metrics are maximized (log loss minimized)
COST_OBJECTIVES = ("params", "flops", "latency")
CV_OBJECTIVES = tuple(f"val_{m}" for m in METRICS)
OBJECTIVES = CV_OBJECTIVES + COST_OBJECTIVES
#: constraint key -> the trial measurement it bounds (feasible when measurement <= bound)
CONSTRAINTS = {"max_params": "params", "max_flops": "flops", "max_latency": "latency"}


def direction(objective: str) -> str:
    """``maximize`` for CV scores, ``minimize`` for log loss and costs."""
    return "minimize" if objective in COST_OBJECTIVES or objective.endswith(LOWER_IS_BETTER) \
        else "maximize"


@dataclass(frozen=True)
class DiagnosisSettings:
    """A study's ``diagnosis:`` section. ``baseline``: the shallow baseline (scikit-learn,
    seconds), computed once per study and read by every trial's diagnosis; ``controls``: costly
    controls (each retrains the candidate on the same splits) run for the trials that ``on``
    selects (:data:`DIAGNOSIS_ON`)."""

    baseline: bool = True
    controls: tuple[str, ...] = ()
    on: str = "plateau"
    #: the reference network control (nasdepth.diagnosis.reference): on, and its budget (s)
    reference: bool = True
    reference_budget: float = 300.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "controls": list(self.controls)}


def _enqueue(raw: dict[str, Any], space: SearchSpace, source: str,
             extra: tuple[str, ...] = ()) -> tuple[dict[str, Any], ...]:
    """``enqueue:``: a list of candidates, each a mapping of the space's parameters (every
    parameter the candidate needs), checked by building it from the space."""
    import optuna

    spec = raw.get("enqueue") or []
    if not isinstance(spec, list) or not all(isinstance(c, dict) for c in spec):
        raise ConfigError(source, "enqueue", spec, "a list of mappings of space parameters")
    names = {p.name for p in space.params} | set(extra)  # extra: a multitask study's own
    for i, cand in enumerate(spec):
        for key in cand:
            if key not in names:
                raise UnknownNameError(source, f"enqueue[{i}]", key, names)
        try:
            # FixedTrial answers the same suggest_* calls as a live trial
            space.suggest(optuna.trial.FixedTrial(dict(cand)))  # type: ignore[arg-type]
        except (ValueError, KeyError) as exc:
            raise ConfigError(source, f"enqueue[{i}]", cand,
                              f"values the space allows ({exc})") from None
    return tuple(dict(c) for c in spec)


def _diagnosis(raw: dict[str, Any], source: str) -> DiagnosisSettings:
    section = _section(raw, "diagnosis", DIAGNOSIS_KEYS, source)
    baseline = check_bool(section.get("baseline", True), source, "diagnosis.baseline")
    spec = section.get("controls", [])
    names = [spec] if isinstance(spec, str) else spec
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(source, "diagnosis.controls", spec,
                          "a list of " + ", ".join(STUDY_CONTROLS))
    if names == ["all"]:
        names = list(STUDY_CONTROLS)
    for name in names:
        if name == "shallow":
            raise ConfigError(source, "diagnosis.controls", name,
                              "one of " + ", ".join(STUDY_CONTROLS) + " (the shallow baseline "
                              "runs by default; 'baseline: false' turns it off)")
        if name not in STUDY_CONTROLS:
            raise UnknownNameError(source, "diagnosis.controls", name, (*STUDY_CONTROLS, "all"))
    names = list(dict.fromkeys(names))
    on = section.get("on", "plateau")
    if on not in DIAGNOSIS_ON:
        raise UnknownNameError(source, "diagnosis.on", on, DIAGNOSIS_ON)
    reference = check_bool(section.get("reference", True), source, "diagnosis.reference")
    budget = section.get("reference_budget", 300.0)
    if isinstance(budget, bool) or not isinstance(budget, int | float) or budget < 0:
        raise ConfigError(source, "diagnosis.reference_budget", budget,
                          "a number of seconds >= 0")
    return DiagnosisSettings(baseline=baseline, controls=tuple(names), on=on,
                             reference=reference, reference_budget=float(budget))


@dataclass
class StudyConfig:
    name: str
    data: str | dict[str, Any]
    space: SearchSpace
    path: Path
    cv_seed: int = 0
    cv: CVConfig = field(default_factory=lambda: CVConfig(folds=3))
    training: TrainConfig = field(default_factory=TrainConfig)
    trials: int = 10
    timeout: float | None = None
    seed: int = 0
    storage: str | None = None
    objectives: tuple[str, ...] = ("val_accuracy",)
    sampler: str = "tpe"
    sampler_options: dict[str, Any] = field(default_factory=dict)
    pruner: str = "none"
    pruner_options: dict[str, Any] = field(default_factory=dict)
    constraints: dict[str, float] = field(default_factory=dict)
    heartbeat_interval: int = 10
    grace_period: int = 30
    max_retry: int = 3
    description: str = ""
    diagnosis: DiagnosisSettings = field(default_factory=DiagnosisSettings)
    #: candidates (parameter values of the space) the study tries first, once, when created
    enqueue: tuple[dict[str, Any], ...] = ()
    #: a multitask study's ``tasks:`` section (None: single-task; see study/tasks_file.py)
    tasks: TaskSettings | None = None
    #: the ``transfer:`` section (:mod:`nasdepth.study.transfer`), None without one
    transfer: TransferSection | None = None
    #: ``auto``, ``on`` or ``off``: queue a finite space's candidates in order of a one-fold
    #: screen (:mod:`nasdepth.study.screen`)
    screen: str = "auto"

    @property
    def objective(self) -> str:
        """The primary objective (a CV metric): the one pruners and ``best`` trials use."""
        return self.objectives[0]

    @property
    def directions(self) -> list[str]:
        return [direction(o) for o in self.objectives]

    @property
    def storage_url(self) -> str:
        """The storage given, else a journal file beside the study file (safe for several
        local processes)."""
        return self.storage or str(self.path.parent / f"{self.name}.journal")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "data": self.data, "space": self.space.source,
            "space_params": space_fingerprint(self.space),
            "folds": self.cv.folds, "cv_seed": self.cv_seed, "repeats": self.cv.repeats,
            "cv": self.cv.to_dict(),
            "training": self.training.to_dict(), "trials": self.trials,
            "timeout": self.timeout, "seed": self.seed, "objective": self.objective,
            "objectives": list(self.objectives), "sampler": self.sampler,
            "sampler_options": self.sampler_options, "pruner": self.pruner,
            "pruner_options": self.pruner_options, "constraints": self.constraints,
            "diagnosis": self.diagnosis.to_dict(), "screen": self.screen,
            **({"tasks": self.tasks.to_dict()} if self.tasks is not None else {}),
            **({} if self.transfer is None else {"transfer": self.transfer.to_dict()}),
        }


def space_fingerprint(space: SearchSpace) -> list[dict[str, Any]]:
    """The parameters of a space as JSON (two spaces are the same study when these match)."""
    return [{"name": p.name, "kind": p.kind, "value": p.value, "low": p.low, "high": p.high,
             "step": p.step, "log": p.log, "choices": list(p.choices),
             "when": {k: list(v) for k, v in p.when.items()}} for p in space.params]


def parse_screen(value: Any, source: str) -> str:
    """A study file's ``screen:`` value (YAML reads ``on``/``off`` as booleans)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if not isinstance(value, str):
        raise ConfigError(source, "screen", value, "one of auto, on, off")
    if value not in SCREEN_MODES:
        raise UnknownNameError(source, "screen", value, SCREEN_MODES)
    return value


def _section(raw: dict[str, Any], key: str, valid: set[str], source: str) -> dict[str, Any]:
    return check_section(raw.get(key) or {}, source, key, valid, "a mapping")


def _named(spec: Any, source: str, key: str) -> tuple[str, dict[str, Any]]:
    """``tpe`` or ``{name: tpe, option: value}`` -> (name, options)."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        return spec["name"], {k: v for k, v in spec.items() if k != "name"}
    raise ConfigError(source, key, spec, "a name or a mapping with a 'name'")


def _objectives(raw: dict[str, Any], source: str) -> tuple[str, ...]:
    spec = raw.get("objectives", raw.get("objective", "val_accuracy"))
    names = [spec] if isinstance(spec, str) else spec
    if not isinstance(names, list) or not names:
        raise ConfigError(source, "objectives", spec, "a name or a non-empty list of names")
    for name in names:
        if name not in OBJECTIVES:
            raise UnknownNameError(source, "objectives", name, OBJECTIVES)
    if names[0] not in CV_OBJECTIVES:
        raise ConfigError(source, "objectives", names,
                          "a list starting with a CV metric (" + ", ".join(CV_OBJECTIVES) + ")")
    if len(set(names)) != len(names):
        raise ConfigError(source, "objectives", names, "a list without repeats")
    return tuple(names)


def _storage(raw: dict[str, Any], source: str) -> dict[str, Any]:
    spec = raw.get("storage")
    out: dict[str, Any] = {"url": spec}
    if spec is not None and not isinstance(spec, str):
        section = _section(raw, "storage", STORAGE_KEYS, source)
        out["url"] = section.get("url")
        for key, low in (("heartbeat_interval", 1), ("grace_period", 1), ("max_retry", 0)):
            if key in section:
                out[key] = check_int(section[key], source, f"storage.{key}", low)
        if out["url"] is not None and not isinstance(out["url"], str):
            raise ConfigError(source, "storage.url", out["url"], "a URL or a file path")
    if out["url"] is not None:  # libpq's 'host=db ...' form as the URI it means
        from nasdepth.study.storage import storage_url

        out["url"] = storage_url(out["url"])
    return out


def _constraints(raw: dict[str, Any], source: str) -> dict[str, float]:
    section = _section(raw, "constraints", set(CONSTRAINTS), source)
    for key, value in section.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ConfigError(source, f"constraints.{key}", value, "a number > 0")
    return {k: float(v) for k, v in section.items()}


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``patch`` applied (nested mappings merged, ``None`` values ignored):
    how CLI flags override a study file."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def study_from_dict(raw: Any, path: Path, source: str | None = None) -> StudyConfig:
    """Validate a study mapping (as read from YAML); ``path`` anchors relative paths."""

    source = source or str(path)
    if not isinstance(raw, dict):
        raise ConfigError(source, "study", type(raw).__name__, "a mapping")
    for key in raw:
        if key not in STUDY_KEYS:
            raise UnknownNameError(source, "key", key, STUDY_KEYS)
    for key in ("data", "space"):
        if key not in raw:
            raise ConfigError(source, key, None, "set")
    data = raw["data"]
    if not isinstance(data, (str, dict)):
        raise ConfigError(source, "data", data, "a data spec such as sklearn:digits or a mapping")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(source, "seed", seed, "an int")
    spec = raw["space"]
    space = (SearchSpace.from_dict(spec, f"{source} (space)") if isinstance(spec, dict)
             else load_space(resolve_path(str(spec), path)))
    cv_raw = raw.get("cv") or {}
    if not isinstance(cv_raw, dict):
        raise ConfigError(source, "cv", cv_raw, "a mapping")
    cv = CVConfig.from_dict({"folds": 3, "seed": seed, **cv_raw}, source)
    budget = _section(raw, "budget", BUDGET_KEYS, source)
    training_raw = _section(raw, "training", set(TrainConfig().to_dict()), source)
    # a recipe key is fixed under training: or searched in the space, never both
    training_conflicts(space.searched_recipe(), training_raw, source, space.source)
    training = TrainConfig.from_dict(training_raw, source)
    momentum_conflict(space.searched_recipe(), training, source)
    trials = check_int(budget.get("trials", 10), source, "budget.trials", 1)
    timeout = budget.get("timeout")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ConfigError(source, "budget.timeout", timeout, "a number of seconds > 0")
    tasks = None
    if raw.get("tasks") is not None:
        tasks = parse_tasks(raw["tasks"], source, CV_OBJECTIVES)
        objectives = _task_objectives(raw, tasks, space, source)
    else:
        objectives = _objectives(raw, source)
    sampler, sampler_options = _named(raw.get("sampler", "tpe"), source, "sampler")
    pruner, pruner_options = _named(raw.get("pruner", "none"), source, "pruner")
    check_sampler(sampler, sampler_options, source)
    check_pruner(pruner, pruner_options, source)
    if len(objectives) > 1 and pruner != "none":
        raise ConfigError(source, "pruner", pruner,
                          "none with several objectives (Optuna prunes single-objective studies)")
    storage = _storage(raw, source)
    transfer = None
    if raw.get("transfer") is not None:  # its checks read the checkpoint: torch loads only here
        from nasdepth.study.transfer import parse_transfer

        transfer = parse_transfer(raw["transfer"], path, source, space, sampler,
                                  raw.get("diagnosis"))
    return StudyConfig(
        name=check_name(raw.get("name", path.stem), source), data=data, space=space, path=path,
        cv_seed=cv.seed, cv=cv, training=training,
        trials=trials, timeout=timeout, seed=seed,
        storage=storage["url"], objectives=objectives, sampler=sampler,
        sampler_options=sampler_options, pruner=pruner, pruner_options=pruner_options,
        constraints=_constraints(raw, source),
        heartbeat_interval=storage.get("heartbeat_interval", 10),
        grace_period=storage.get("grace_period", 30), max_retry=storage.get("max_retry", 3),
        description=str(raw.get("description", "")),
        diagnosis=_diagnosis(raw, source), screen=parse_screen(raw.get("screen", "auto"), source),
        enqueue=_enqueue(raw, space, source, SEARCHED if tasks is not None else ()),
        tasks=tasks,
        transfer=transfer,
    )


def _task_objectives(raw: dict[str, Any], tasks: TaskSettings, space: SearchSpace,
                     source: str) -> tuple[str, ...]:
    """A multitask study's objectives: the CV ones from ``tasks.objective``, then the cost
    objectives ``objectives:`` lists (CV metrics there would contradict the tasks' own)."""
    if tasks.objective == "all" and not tasks.names:
        raise ConfigError(source, "tasks.names", None,
                          "set with objective: all (one objective per task)")
    taken = {p.name for p in space.params} & set(SEARCHED)
    if taken:
        raise ConfigError(source, "tasks", sorted(taken),
                          "settings the space does not sample as well")
    spec = raw.get("objectives", raw.get("objective", []))
    extra = [spec] if isinstance(spec, str) else list(spec or [])
    for name in extra:
        if name not in COST_OBJECTIVES:
            raise ConfigError(source, "objectives", name,
                              "a cost objective (" + ", ".join(COST_OBJECTIVES) + ") in a "
                              "multitask study (tasks.objective sets the CV ones)")
    return tasks.objectives(tasks.names) + tuple(dict.fromkeys(extra))


def load_study(path: str | Path, overrides: dict[str, Any] | None = None) -> StudyConfig:
    """Read and validate a study YAML file; ``overrides`` (same layout, e.g. from CLI flags,
    ``None`` values ignored) replace what the file says."""
    raw = read_yaml(path, "study file")
    if overrides and isinstance(raw, dict):  # else study_from_dict says what it must be
        raw = merge(raw, overrides)
    return study_from_dict(raw, Path(path), str(path))


def study_inputs(cfg: StudyConfig, storage: str | None = None) -> dict[str, object]:
    """What a command on the study ``cfg`` reads, by role: for the output-path guard."""
    found: dict[str, object] = {"study file": cfg.path, "study storage": storage or
                                cfg.storage_url, "data file": cfg.data}
    if cfg.space.source.endswith((".yaml", ".yml")):
        found["search-space file"] = cfg.space.source
    if cfg.transfer is not None:
        found["transfer checkpoint"] = cfg.transfer.weights
    return found
