"""nasdepth against the tools a user would pick instead, side by side in one run, one thread.

The same grid of small networks (CNNs on digits: depth 2/4/8 x width 16/32 x plain/residual;
MLPs on synthetic tabular data: depth 2/4/8 x width 64/128 x plain/residual), the same
stratified k-fold CV, epochs, batch size and AdamW rate, three ways:

* ``skorch``: ``NeuralNetClassifier`` (the very ``nn.Module`` that ``build_model`` makes, behind
  a ``StandardScaler`` in a ``Pipeline``) under scikit-learn's ``cross_val_score``. Its own
  validation split is off (``train_split=None``): it trains on the same rows as the engine and
  skips a per-epoch validation pass the engine does, so the time ratio is, if anything, in
  skorch's favour;
* ``engine``: ``nasdepth.cross_validate`` with the default recipe (the default schedule and
  automatic engine choices) at the same rate;
* ``sweep``: the whole ``nasdepth sweep`` command on the grid (probes, diagnosis, report).

skorch runs in a child process of its own, as its users run it: the engine tunes the
process's ``malloc`` the first time it trains (``nasdepth.train.host_memory``), which would
speed up a peer in the same process too (``--same-process`` runs skorch here instead, and so
shows the engine's lead over a skorch user who tunes ``malloc`` alike). Candidates are
interleaved (skorch, engine, next candidate) so that foreign load hits both alike; the table
prints wall times, ratios and mean CV accuracies per candidate and for the grid. Then the
time to an answer: a search over the same 12-point space until the best trial it has finished
is within ``--within`` (0.5 points) of the grid's best, for a nasdepth study
(default sampler, pruner and screen; ``--pruners`` adds others, ``screen-off`` the
default without its screen) against optuna-integration's
``OptunaSearchCV`` over the skorch pipeline, each over ``--search-seeds`` sampler seeds (the
folds and the models' seeds stay fixed). Each tool is measured against its own grid.

    .venv/bin/python benchmarks/bench_peers.py --quick            # 3 folds x 2 epochs, minutes
    .venv/bin/python benchmarks/bench_peers.py --case cnn         # the issue's 5-fold x 5 epochs
    .venv/bin/python benchmarks/bench_peers.py --case mlp --no-search
    .venv/bin/python benchmarks/bench_peers.py --case cnn --no-search --no-sweep --bound

``--bound``: after the grid, the most any engine could gain over skorch on this CPU. Per
candidate, the FLOPs the CV cannot avoid (every training row forward and backward each epoch,
every validation row scored once; counted with ``FlopCounterMode`` as in ``bench_cv.py``) at
the rate the candidate's own convolutions or linear layers reach alone in a tight loop (this
process's CPU seconds): an engine with no time outside those kernels would take that long.
skorch's measured time over that bound is the largest ratio any engine could show.

Needs the ``bench`` extra (``pip install -e .[bench]``: skorch, optuna-integration).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import torch  # noqa: E402
from peer_process import PeerProcess  # noqa: E402  (this script's folder)
from torch import nn  # noqa: E402

from nasdepth import TrainConfig, cross_validate, load_data  # noqa: E402
from nasdepth.arch import build_model  # noqa: E402
from nasdepth.space import SearchSpace  # noqa: E402
from nasdepth.train.cpu_bf16 import cpu_bf16_fast  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Grid:
    name: str
    data_spec: Any
    depths: list[int]
    widths: list[int]
    blocks: list[str]

    def space_dict(self) -> dict[str, Any]:
        return {"name": "peers", "stages": 1,
                "depth": {"type": "categorical", "choices": self.depths},
                "width": {"type": "categorical", "choices": self.widths},
                "block": {"type": "categorical", "choices": self.blocks},
                "skip": True}


def grids(case: str, mlp_samples: int) -> list[Grid]:
    out = []
    if case in ("cnn", "all"):
        out.append(Grid("CNNs on digits (1x8x8)", "sklearn:digits", [2, 4, 8], [16, 32],
                        ["plain", "residual"]))
    if case in ("mlp", "all"):
        out.append(Grid(f"MLPs on synthetic {mlp_samples}x64",
                        {"source": "synthetic:classification", "n_samples": mlp_samples,
                         "n_features": 64, "n_informative": 16, "n_classes": 4},
                        [2, 4, 8], [64, 128], ["plain", "residual"]))
    return out


#: the grids' spaces by name: skorch's parameters must be plain values it can clone
SPACES: dict[str, SearchSpace] = {}


class FlatInput(nn.Module):
    """A ``build_model`` network behind a reshape: skorch's pipeline passes flat rows."""

    def __init__(self, space: str = "", input_shape: tuple[int, ...] = (),
                 num_classes: int = 2, depth: int = 2, width: int = 16,
                 block: str = "plain") -> None:
        super().__init__()
        self.shape = input_shape
        arch = SPACES[space].to_arch({"depth": depth, "width": width, "block": block},
                             input_shape=input_shape)
        self.net = build_model(arch, input_shape, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(len(x), *self.shape))


def skorch_pipeline(space: SearchSpace, data: Any, epochs: int, batch_size: int, lr: float,
                    seed: int) -> Any:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from skorch import NeuralNetClassifier

    torch.manual_seed(seed)
    SPACES[space.name] = space
    net = NeuralNetClassifier(
        FlatInput, module__space=space.name, module__input_shape=tuple(data.input_shape),
        module__num_classes=data.num_classes, criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.AdamW, optimizer__weight_decay=1e-4, lr=lr, max_epochs=epochs,
        batch_size=batch_size, iterator_train__shuffle=True, train_split=None, verbose=0,
        device="cpu")
    return Pipeline([("scale", StandardScaler()), ("net", net)])


def flat_xy(data: Any) -> tuple[np.ndarray, np.ndarray]:
    return data.x.reshape(len(data.x), -1).numpy().astype(np.float32), data.y_numpy


def run_skorch(space: SearchSpace, data: Any, params: dict[str, Any], args: argparse.Namespace
               ) -> float:
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    pipe = skorch_pipeline(space, data, args.epochs, args.batch_size, args.lr, 0)
    pipe.set_params(**{f"net__module__{k}": params[k] for k in ("depth", "width", "block")})
    x, y = flat_xy(data)
    cv = StratifiedKFold(args.folds, shuffle=True, random_state=0)
    return float(cross_val_score(pipe, x, y, cv=cv, scoring="accuracy").mean())


_DATA: dict[str, Any] = {}


def _peer_data(spec: Any) -> Any:
    name = json.dumps(spec, sort_keys=True)
    if name not in _DATA:
        _DATA[name] = load_data(spec)
    return _DATA[name]


def _peer_init() -> None:
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)


def _peer_grid_job(space_raw: dict[str, Any], spec: Any, params: dict[str, Any],
                   args: argparse.Namespace) -> tuple[float, float]:
    """One skorch CV in the peer process: (accuracy, seconds, timed there)."""
    space = SearchSpace.from_dict(space_raw, "bench_peers")
    return timed(run_skorch, space, _peer_data(spec), params, args)


def _peer_search_job(space_raw: dict[str, Any], spec: Any, grid: Grid, target: float,
                     seed: int, args: argparse.Namespace) -> tuple[float | None, int]:
    space = SearchSpace.from_dict(space_raw, "bench_peers")
    return search_cv_time_to_answer(space, _peer_data(spec), grid, target, seed, args)


class Peer(PeerProcess):
    """Where skorch runs (:class:`PeerProcess`), with its two jobs: a grid candidate's CV and
    a search until the answer."""

    def __init__(self, same_process: bool) -> None:
        super().__init__(same_process, initializer=_peer_init)

    def grid(self, grid: Grid, params: dict[str, Any], args: argparse.Namespace
             ) -> tuple[float, float]:
        return self.call(_peer_grid_job, grid.space_dict(), grid.data_spec, params, args)

    def search(self, grid: Grid, target: float, seed: int, args: argparse.Namespace
               ) -> tuple[float | None, int]:
        return self.call(_peer_search_job, grid.space_dict(), grid.data_spec, grid, target,
                         seed, args)


PEER: list[Peer] = []


def training(args: argparse.Namespace) -> TrainConfig:
    """The default recipe at the grid's rate: only what the comparison fixes is set (and
    ``--schedule`` where given)."""
    extra = {} if args.schedule is None else {"schedule": args.schedule}
    if args.precision is not None:
        extra["precision"] = args.precision
    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, **extra)


def run_engine(space: SearchSpace, data: Any, params: dict[str, Any],
               args: argparse.Namespace) -> float:
    arch = space.to_arch(params, input_shape=data.input_shape)
    return cross_validate(arch, data, folds=args.folds, seed=0, training=training(args)).mean()


def key(params: dict[str, Any]) -> tuple[Any, ...]:
    return (params["depth"], params["width"], params["block"])


def timed(fn: Any, *a: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*a)
    return out, time.perf_counter() - start


def kernel_bound(grid: Grid, space: SearchSpace, data: Any,
                 table: dict[tuple[Any, ...], tuple[float, float]], args: argparse.Namespace
                 ) -> None:
    """The kernel-only time of each candidate's CV and the ratio over skorch it allows (see
    the module's docstring); ``table`` holds skorch's (accuracy, seconds) per candidate."""
    import bench_cv  # the FLOP counts and kernel timings (this script's folder)

    kind = "cnn" if len(data.input_shape) > 1 else "mlp"
    n, n_train = len(data), len(data) * (args.folds - 1) / args.folds
    layers = "convolutions" if kind == "cnn" else "linear layers"
    # where the engine's ``precision: auto`` trains in bf16 (CNNs, a CPU where bf16
    # convolutions are faster), the same kernels under bf16 autocast bound it too
    bf16 = kind == "cnn" and cpu_bf16_fast()
    print(f"\nkernel-only bound ({kind}: the model's own {layers} alone, 1 thread, CPU s): "
          f"the CV's unavoidable FLOPs at their rate" + (", in fp32 and under bf16 autocast"
                                                          if bf16 else ""))
    extra = f" {'bf16 GF/s':>9} {'bf16 s':>7} {'max x':>6}" if bf16 else ""
    print(f"{'depth':>5} {'width':>5} {'block':>8} {'GFLOP':>7} {'GFLOP/s':>8} {'bound s':>8} "
          f"{'skorch s':>9} {'max x':>6}{extra}", flush=True)
    total_bound = total_skorch = total_bf16 = 0.0
    for params in space.grid() or []:
        case = bench_cv.Case("", space.to_arch(params, input_shape=data.input_shape), data, kind)
        per_train, per_eval = bench_cv.sample_flops(case, args.batch_size)
        flops = args.folds * args.epochs * n_train * per_train + n * per_eval
        rate = bench_cv.layer_rate(case, args.batch_size)[0]
        bound, t_s = flops / rate, table[key(params)][1]
        total_bound, total_skorch = total_bound + bound, total_skorch + t_s
        extra = ""
        if bf16:
            rate16 = bench_cv.layer_rate(case, args.batch_size, bf16=True)[0]
            total_bf16 += flops / rate16
            extra = f" {rate16 / 1e9:9.1f} {flops / rate16:7.2f} {t_s * rate16 / flops:6.2f}"
        print(f"{params['depth']:>5} {params['width']:>5} {params['block']:>8} "
              f"{flops / 1e9:7.1f} {rate / 1e9:8.1f} {bound:8.2f} {t_s:9.2f} "
              f"{t_s / bound:6.2f}{extra}", flush=True)
    extra = f" {'':>9} {total_bf16:7.1f} {total_skorch / total_bf16:6.2f}" if bf16 else ""
    print(f"{'grid':>20} {'':>7} {'':>8} {total_bound:8.1f} {total_skorch:9.1f} "
          f"{total_skorch / total_bound:6.2f}{extra}")


def grid_table(grid: Grid, space: SearchSpace, data: Any, args: argparse.Namespace
               ) -> dict[str, dict[tuple[Any, ...], tuple[float, float]]]:
    combos = space.grid() or []
    out: dict[str, dict[tuple[Any, ...], tuple[float, float]]] = {"skorch": {}, "engine": {}}
    PEER[0].grid(grid, combos[0], argparse.Namespace(**{**vars(args), "epochs": 1}))
    run_engine(space, data, combos[0], argparse.Namespace(**{**vars(args), "epochs": 1}))
    print(f"\n== {grid.name}: {len(combos)} candidates, {args.folds}-fold CV x {args.epochs} "
          f"epochs, batch {args.batch_size}, AdamW {args.lr:g} ==")
    print(f"{'depth':>5} {'width':>5} {'block':>8} {'skorch s':>9} {'engine s':>9} "
          f"{'ratio':>6} {'skorch acc':>10} {'engine acc':>10}", flush=True)
    for params in combos:
        acc_s, t_s = PEER[0].grid(grid, params, args)
        acc_e, t_e = timed(run_engine, space, data, params, args)
        out["skorch"][key(params)] = (acc_s, t_s)
        out["engine"][key(params)] = (acc_e, t_e)
        print(f"{params['depth']:>5} {params['width']:>5} {params['block']:>8} {t_s:9.2f} "
              f"{t_e:9.2f} {t_s / t_e:6.2f} {acc_s:10.4f} {acc_e:10.4f}", flush=True)
    ts = sum(v[1] for v in out["skorch"].values())
    te = sum(v[1] for v in out["engine"].values())
    acc_s = statistics.mean(v[0] for v in out["skorch"].values())
    acc_e = statistics.mean(v[0] for v in out["engine"].values())
    print(f"{'grid':>20} {ts:9.1f} {te:9.1f} {ts / te:6.2f} {acc_s:10.4f} {acc_e:10.4f}")
    return out


def run_sweep(grid: Grid, args: argparse.Namespace, folder: Path, *extra: str
              ) -> tuple[float, str]:
    """The whole ``nasdepth sweep`` command (a fresh process: imports included): its seconds
    and the line it prints of where its time went (``Time: ...``, measured inside the run:
    the probes' own calls, the diagnosis and the report beside the training). ``extra``:
    flags such as ``--no-probes``."""
    data = grid.data_spec if isinstance(grid.data_spec, str) else None
    if data is None:  # a mapping: through a one-line data YAML is not what sweep takes;
        return float("nan"), ""  # sweep's --data is a spec string, so MLP grids skip it
    cmd = [sys.executable, "-c", "import sys; from nasdepth.cli import main; sys.exit(main())",
           "sweep", "--data", data,
           "--depth", ",".join(map(str, grid.depths)),
           "--width", ",".join(map(str, grid.widths)), "--block", ",".join(grid.blocks),
           "--skip", "on", "--batch-size", str(args.batch_size), "--lr", str(args.lr),
           "--folds", str(args.folds), "--epochs", str(args.epochs), "--no-progress",
           "--storage", str(folder / "sweep.journal"), "--out", str(folder / "report"),
           "--name", f"peers-sweep{len(extra)}", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=True, env=env, cwd=folder, stdout=subprocess.PIPE,
                          text=True)
    seconds = time.perf_counter() - start
    split = next((ln for ln in proc.stdout.splitlines() if ln.startswith("Time: ")), "")
    return seconds, split


def study_time_to_answer(grid: Grid, space: SearchSpace, target: float,
                         table: dict[tuple[Any, ...], tuple[float, float]], seed: int,
                         pruner: str, args: argparse.Namespace, folder: Path
                         ) -> tuple[float | None, int]:
    """Seconds until a nasdepth study's best finished trial is within reach of the grid's
    best, and the trials it ran."""
    from nasdepth.study import run_study
    from nasdepth.study.study_file import study_from_dict

    name = f"tta-{grid.name.split()[0].lower()}-{pruner}-{seed}"  # one per grid, pruner, seed
    raw: dict[str, Any] = {
        "name": name, "data": grid.data_spec, "space": grid.space_dict(),
        "cv": {"folds": args.folds, "seed": 0},
        "training": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                     **({} if args.schedule is None else {"schedule": args.schedule})},
        "budget": {"trials": args.search_trials}, "seed": seed,
        "storage": str(folder / f"{name}.journal")}
    if pruner == "screen-off":  # the default study without its screen (docs/studies.md)
        raw["screen"] = "off"
    elif pruner != "default":
        raw["pruner"] = pruner
    cfg = study_from_dict(raw, folder / f"{name}.yaml")
    start = time.time()
    st = run_study(cfg, progress=False, probes=False)
    best, n = -1.0, 0
    done = sorted((t for t in st.trials if t.datetime_complete is not None),
                  key=lambda t: t.datetime_complete)
    for t in done:
        n += 1
        if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None:
            best = max(best, t.value)
        if best >= target:
            return t.datetime_complete.timestamp() - start, n
    return None, n


def search_cv_time_to_answer(space: SearchSpace, data: Any, grid: Grid, target: float,
                             seed: int, args: argparse.Namespace) -> tuple[float | None, int]:
    """The same for optuna-integration's ``OptunaSearchCV`` over the skorch pipeline (its
    default sampler, seeded; stopped once the answer is in)."""
    from optuna.distributions import CategoricalDistribution
    from optuna_integration import OptunaSearchCV
    from sklearn.model_selection import StratifiedKFold

    pipe = skorch_pipeline(space, data, args.epochs, args.batch_size, args.lr, 0)
    dists = {"net__module__depth": CategoricalDistribution(grid.depths),
             "net__module__width": CategoricalDistribution(grid.widths),
             "net__module__block": CategoricalDistribution(grid.blocks)}
    found: list[float] = []
    count = [0]
    start = time.perf_counter()

    def stop_when_found(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        count[0] += 1
        if not found and study.best_value >= target:
            found.append(time.perf_counter() - start)
            study.stop()

    x, y = flat_xy(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = OptunaSearchCV(pipe, dists, cv=StratifiedKFold(args.folds, shuffle=True,
                                                                random_state=0),
                                n_trials=args.search_trials, refit=False, random_state=seed,
                                scoring="accuracy", callbacks=[stop_when_found], verbose=0)
        search.fit(x, y)
    return (found[0] if found else None), count[0]


def expected_time_to_answer(table: dict[tuple[Any, ...], tuple[float, float]], target: float,
                            draws: int = 20000) -> tuple[float, float]:
    """Median and mean seconds to an answer of a search that draws the grid's candidates in a
    uniformly random order without repeats (unpruned; each candidate costs its grid time), over
    ``draws`` orders: what a sampler's luck averages to, from the grid table alone."""
    rng = np.random.default_rng(0)
    times = np.array([v[1] for v in table.values()])
    hit = np.array([v[0] >= target for v in table.values()])
    orders = np.argsort(rng.random((draws, len(times))), axis=1)  # one permutation a row
    first = hit[orders].argmax(axis=1)  # where each order meets its first answer
    out = np.cumsum(times[orders], axis=1)[np.arange(draws), first]
    return float(np.median(out)), float(out.mean())


def print_expected(tables: dict[str, dict[tuple[Any, ...], tuple[float, float]]],
                   within: float) -> None:
    got = {}
    for tool, t in tables.items():
        target = max(v[0] for v in t.values()) - within / 100
        got[tool] = (expected_time_to_answer(t, target),
                     sum(v[0] >= target for v in t.values()))
    (med_s, mean_s), n_s = got["skorch"]
    (med_e, mean_e), n_e = got["engine"]
    print(f"time to an answer by luck alone (candidates in a random order, no repeats, no "
          f"pruning; {n_s} of {len(tables['skorch'])} answers for skorch, {n_e} for the "
          f"engine): skorch median {med_s:.1f} s (mean {mean_s:.1f}), engine median "
          f"{med_e:.1f} s (mean {mean_e:.1f}): {med_s / med_e:.2f}x "
          f"(means {mean_s / mean_e:.2f}x)")
    target = max(v[0] for v in tables["engine"].values()) - within / 100
    oracle, _ = oracle_time_to_answer(tables["engine"], target)
    print(f"an oracle search (the engine's cheapest answer first, nothing spent on finding it): "
          f"{oracle:.1f} s, {med_s / oracle:.2f}x skorch's luck-alone median: the most a "
          f"time-to-answer ratio can be against a search that draws at random")


def time_to_answer(grid: Grid, space: SearchSpace, data: Any,
                   tables: dict[str, dict[tuple[Any, ...], tuple[float, float]]],
                   args: argparse.Namespace, folder: Path) -> None:
    within = args.within / 100
    targets = {tool: max(v[0] for v in t.values()) - within for tool, t in tables.items()}
    print(f"\ntime to a trial within {args.within} points of the grid's best "
          f"(engine's grid best {targets['engine'] + within:.4f}, skorch's "
          f"{targets['skorch'] + within:.4f}); at most {args.search_trials} trials per search")
    print(f"{'seed':>4} {'OptunaSearchCV s':>17} " + " ".join(
        f"{f'nasdepth {p} s':>22}" for p in args.pruners))
    rows: dict[str, list[float]] = {p: [] for p in ["skorch", *args.pruners]}
    for seed in range(args.search_seeds):
        t_s, n_s = PEER[0].search(grid, targets["skorch"], seed, args)
        cells = [f"{'-' if t_s is None else f'{t_s:.1f}'} ({n_s} tr)".rjust(17)]
        rows["skorch"].append(float("inf") if t_s is None else t_s)
        for p in args.pruners:
            t_n, n_n = study_time_to_answer(grid, space, targets["engine"], tables["engine"],
                                            seed, p, args, folder)
            rows[p].append(float("inf") if t_n is None else t_n)
            cells.append(f"{'-' if t_n is None else f'{t_n:.1f}'} ({n_n} tr)".rjust(22))
        print(f"{seed:>4} " + " ".join(cells), flush=True)
    med_s = statistics.median(rows["skorch"])
    print(f"{'med':>4} {med_s:17.1f} " + " ".join(
        f"{statistics.median(rows[p]):15.1f} ({med_s / statistics.median(rows[p]):4.2f}x)"
        for p in args.pruners))
    oracle, name = oracle_time_to_answer(tables["engine"], targets["engine"])
    print(f"the most any nasdepth search could show: an oracle that knows the answers and runs "
          f"the cheapest one first, with no screen ({'x'.join(map(str, name))}: {oracle:.1f} s "
          f"in the grid run) would reach {med_s / oracle:.2f}x this OptunaSearchCV median")


def oracle_time_to_answer(table: dict[tuple[Any, ...], tuple[float, float]], target: float
                          ) -> tuple[float, tuple[Any, ...]]:
    """The grid time of the cheapest answer (within reach of the grid's best) and its key: no
    search that must train an answer's full CV can reach one sooner."""
    key = min((k for k, v in table.items() if v[0] >= target), key=lambda k: table[k][1])
    return table[key][1], key


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", choices=["cnn", "mlp", "all"], default="all")
    ap.add_argument("--quick", action="store_true", help="3 folds x 2 epochs, one search seed")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--mlp-samples", type=int, default=5000)
    ap.add_argument("--schedule", default=None, help="the engine's schedule (default: its own)")
    ap.add_argument("--same-process", action="store_true",
                    help="run skorch in this process (sharing the engine's malloc setting) "
                         "instead of a child process of its own")
    ap.add_argument("--precision", default=None,
                    help="the engine's precision (default: its own, auto)")
    ap.add_argument("--tables", default=None,
                    help="save the grid's scores to PATH.<case>.json, or reuse them if there")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--no-search", action="store_true")
    ap.add_argument("--sweep-bare", action="store_true",
                    help="also run the sweep with --no-probes --no-report (a second sweep)")
    ap.add_argument("--bound", action="store_true",
                    help="print the kernel-only bound on the ratio over skorch")
    ap.add_argument("--search-seeds", type=int, default=3)
    ap.add_argument("--search-trials", type=int, default=24)
    ap.add_argument("--within", type=float, default=0.5, help="points of accuracy")
    ap.add_argument("--pruners", default="default,median",
                    help="nasdepth pruners to time (default: the study default; screen-off: "
                         "the default study with screen: off)")
    args = ap.parse_args()
    if args.quick:
        args.folds, args.epochs, args.search_seeds = 3, 2, 1
        args.mlp_samples = min(args.mlp_samples, 2000)
    args.pruners = args.pruners.split(",")
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print(f"torch {torch.__version__}, 1 thread, load average {os.getloadavg()[0]:.1f}")
    PEER.append(Peer(args.same_process))
    print(f"skorch runs {'in this process' if args.same_process else 'in a child process'}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for grid in grids(args.case, args.mlp_samples):
            data = load_data(grid.data_spec)
            space = SearchSpace.from_dict(grid.space_dict(), "bench_peers")
            saved = Path(f"{args.tables}.{grid.name.split()[0].lower()}.json") \
                if args.tables else None
            if saved is not None and saved.exists():  # the grid of an earlier run
                loaded = json.loads(saved.read_text())
                tables = {tool: {tuple(json.loads(k)): tuple(v) for k, v in t.items()}
                          for tool, t in loaded.items()}
                print(f"\n== {grid.name}: grid scores from {saved}")
            else:
                tables = grid_table(grid, space, data, args)
                if saved is not None:
                    saved.write_text(json.dumps({tool: {json.dumps(list(k)): v
                                                        for k, v in t.items()}
                                                 for tool, t in tables.items()}))
            print_expected(tables, args.within)
            if args.bound:
                kernel_bound(grid, space, data, tables["skorch"], args)
            if not args.no_sweep and isinstance(grid.data_spec, str):
                t_sweep, split = run_sweep(grid, args, folder)
                ts = sum(v[1] for v in tables["skorch"].values())
                te = sum(v[1] for v in tables["engine"].values())
                print(f"whole `nasdepth sweep`: {t_sweep:.1f} s (the process, imports "
                      f"included): {ts / t_sweep:.2f}x skorch; {100 * (t_sweep / te - 1):+.0f}% "
                      f"over the engine's CV time. Inside it: {split.removeprefix('Time: ')}")
                if args.sweep_bare:  # the old measure: a second sweep, noisier than the split
                    t_bare, _ = run_sweep(grid, args, folder, "--no-probes", "--no-report")
                    print(f"the same sweep with --no-probes --no-report: {t_bare:.1f} s "
                          f"({t_sweep - t_bare:+.1f} s)")
            if not args.no_search:
                time_to_answer(grid, space, data, tables, args, folder)


if __name__ == "__main__":
    try:
        main()
    finally:
        for peer in PEER:
            peer.close()
