"""Data sources: each turns ``rest`` of a spec (``sklearn:<rest>``, a path, ...) and its
checked options into a :class:`Dataset`. Nothing is ever downloaded.

A source declares its options with their defaults; :func:`nasdepth.data.load_data` rejects
unknown options (with the closest valid name) before the loader runs.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from nasdepth.data.arrays import from_arrays
from nasdepth.data.dataset import Dataset
from nasdepth.data.files import OBJECT_ARRAYS, load_numpy, read_table, table_features
from nasdepth.data.tasks import check_task_name, task_columns
from nasdepth.errors import ConfigError, NasdepthError, UnknownNameError

Loader = Callable[[str, dict[str, Any], str], Dataset]


@dataclass(frozen=True)
class Source:
    """A registered data source: ``load(rest, options, source_label)``."""

    kind: str
    load: Loader
    options: dict[str, Any]
    example: str


SOURCES: dict[str, Source] = {}


def register_source(kind: str, *, options: dict[str, Any], example: str
                    ) -> Callable[[Loader], Loader]:
    def add(fn: Loader) -> Loader:
        if kind in SOURCES:
            raise ValueError(f"data source {kind!r} is registered twice")
        SOURCES[kind] = Source(kind, fn, dict(options), example)
        return fn

    return add


# ---------------------------------------------------------------- option checks
def opt_int(opts: dict[str, Any], key: str, source: str, *, low: int = 1) -> int:
    v = opts.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < low:
        raise ConfigError(source, f"data.{key}", v, f"an int >= {low}")
    return v


def opt_float(opts: dict[str, Any], key: str, source: str, *, low: float, high: float) -> float:
    v = opts.get(key)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not low <= v <= high:
        raise ConfigError(source, f"data.{key}", v, f"a number in [{low}, {high}]")
    return float(v)


def opt_names(opts: dict[str, Any], key: str, source: str) -> list[str]:
    v = opts.get(key) or []
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not all(isinstance(s, str) for s in v):
        raise ConfigError(source, f"data.{key}", v, "a list of column names")
    return list(v)


def opt_shape(opts: dict[str, Any], key: str, source: str, rank: tuple[int, ...]
              ) -> tuple[int, ...] | None:
    v = opts.get(key)
    if v is None:
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v, v] if 2 in rank else [v]
    if (not isinstance(v, (list, tuple)) or len(v) not in rank
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in v)):
        raise ConfigError(source, f"data.{key}", v,
                          " or ".join(f"a list of {r} positive ints" for r in rank))
    return tuple(int(s) for s in v)


def existing_path(path: str, source: str, key: str = "path") -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(source, key, str(path), f"an existing path (nothing at {p.resolve()})")
    return p


# ---------------------------------------------------------------- scikit-learn
SKLEARN = ("digits", "iris", "wine", "breast_cancer")


@register_source("sklearn", options={}, example="sklearn:digits")
def load_sklearn(name: str, opts: dict[str, Any], source: str) -> Dataset:
    from sklearn import datasets

    if name not in SKLEARN:
        raise UnknownNameError(source, "sklearn data set", name, SKLEARN)
    bunch = getattr(datasets, f"load_{name}")()
    x = np.asarray(bunch.data, dtype=np.float32)
    if name == "digits":  # 8x8 grey images: keep them as images for CNNs
        x = x.reshape(-1, 1, 8, 8)
    names = [str(n) for n in bunch.target_names]
    return from_arrays(x, bunch.target, name=f"sklearn:{name}", class_names=names,
                       source=source)


@functools.lru_cache(maxsize=4)
def _mnist1d_made(n: int, seed: int) -> tuple[dict[str, Any], Any, Any]:
    """``mnist1d.make_dataset`` for ``n`` samples and ``seed`` (its arrays made read-only), and
    the global generators' states it leaves behind: it seeds Python's and NumPy's global
    generators and draws from them."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = n, seed
    made = make_dataset(args)
    for value in made.values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return made, np.random.get_state(), random.getstate()


def _mnist1d_arrays(n: int, seed: int) -> dict[str, Any]:
    """MNIST-1D's arrays, generated once per process (3.5 s for the default 5,000 samples; a
    sweep loads its data again for the report's baselines): a repeat also leaves the global
    generators as the generator does."""
    made, np_state, py_state = _mnist1d_made(n, seed)
    np.random.set_state(np_state)
    random.setstate(py_state)
    return made


@register_source("mnist1d", options={"n_samples": 5000, "seed": 42, "split": "train",
                                    "shuffle_positions": False, "flat": False,
                                    "label_noise": 0.0},
                 example="{source: mnist1d, n_samples: 4000, split: train}")
def load_mnist1d(rest: str, opts: dict[str, Any], source: str) -> Dataset:
    """MNIST-1D (Greydanus 2020): 40-step 1-D digit shapes, generated procedurally by the
    ``mnist1d`` package, never downloaded; the published template and defaults (seed 42, 5,000
    samples, 80% ``train``) give the benchmark's own data set (the options:
    ``docs/data_and_training.md``). ``shuffle_positions`` is the paper's test of spatial
    priors (a CNN or GRU loses its advantage, a logistic regression or MLP does not);
    ``label_noise`` on the training part only is the setup of the notebook's width double
    descent (Nakkiran et al. 2019)."""
    try:
        import mnist1d.data  # noqa: F401
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise NasdepthError(f"{source}: the mnist1d data source needs the 'mnist1d' package "
                            "(pip install mnist1d)") from exc
    if rest:
        raise ConfigError(source, "data", f"mnist1d:{rest}", "mnist1d (no name after the colon)")
    n = opt_int(opts, "n_samples", source, low=10)
    seed = opt_int(opts, "seed", source, low=0)
    split = opts.get("split")
    if split not in ("train", "test", "all"):
        raise UnknownNameError(source, "data.split", split, ["train", "test", "all"])
    d = _mnist1d_arrays(n, seed)
    parts = {"train": [("x", "y")], "test": [("x_test", "y_test")],
             "all": [("x", "y"), ("x_test", "y_test")]}[split]
    x = np.concatenate([np.asarray(d[a], dtype=np.float32) for a, _ in parts])
    y = np.concatenate([np.asarray(d[b]) for _, b in parts])
    noise = opt_float(opts, "label_noise", source, low=0.0, high=1.0)
    for key in ("shuffle_positions", "flat"):
        if not isinstance(opts.get(key), bool):
            raise ConfigError(source, f"data.{key}", opts.get(key), "true or false")
    name = f"mnist1d:{split}"
    if opts["shuffle_positions"]:  # one fixed permutation for every sample (seeded)
        x = x[:, np.random.RandomState(0).permutation(x.shape[1])]
        name += ":shuffled"
    if noise > 0 and split != "test":  # the training part: the first len(d["y"]) rows
        n_train = len(d["y"])
        rng = np.random.default_rng(0)
        idx = rng.choice(n_train, size=int(round(noise * n_train)), replace=False)
        y[idx] = rng.integers(0, 10, size=len(idx))  # ``y`` is concatenate's own copy
        name += f":label_noise{noise:g}"
    return from_arrays(x if opts["flat"] else x[:, None, :], y, name=name,
                       class_names=[str(i) for i in range(10)], source=source)


# ---------------------------------------------------------------- generators
@register_source("synthetic", options={
    "n_samples": 600, "n_features": None, "n_informative": 5, "n_classes": 2,
    "n_clusters_per_class": 1, "class_sep": 1.0, "label_noise": 0.0, "image_shape": None,
    "seed": 0,
}, example="{source: synthetic:classification, n_samples: 600, label_noise: 0.2}")
def load_synthetic(name: str, opts: dict[str, Any], source: str) -> Dataset:
    """``make_classification`` with a controllable signal: fewer informative features, a
    smaller ``class_sep`` or more ``label_noise`` (a fraction of labels replaced by random
    classes) make a data-limited problem on purpose."""
    from sklearn.datasets import make_classification

    if name != "classification":
        raise UnknownNameError(source, "synthetic generator", name, ["classification"])
    n = opt_int(opts, "n_samples", source, low=10)
    shape = opt_shape(opts, "image_shape", source, (1, 2, 3))
    if opts.get("n_features") is None:
        n_features = int(np.prod(shape)) if shape else 20
    else:
        n_features = opt_int(opts, "n_features", source)
    if shape and int(np.prod(shape)) != n_features:
        raise ConfigError(source, "data.image_shape", list(shape),
                          f"a shape with n_features = {n_features} values")
    informative = opt_int(opts, "n_informative", source)
    classes = opt_int(opts, "n_classes", source, low=2)
    clusters = opt_int(opts, "n_clusters_per_class", source)
    if informative > n_features:
        raise ConfigError(source, "data.n_informative", informative,
                          f"at most n_features = {n_features}")
    if classes * clusters > 2 ** informative:
        raise ConfigError(source, "data.n_informative", informative,
                          f"large enough that 2**n_informative >= n_classes * "
                          f"n_clusters_per_class = {classes * clusters}")
    sep = opt_float(opts, "class_sep", source, low=0.0, high=1e6)
    noise = opt_float(opts, "label_noise", source, low=0.0, high=1.0)
    seed = opt_int(opts, "seed", source, low=0)
    x, y = make_classification(
        n_samples=n, n_features=n_features, n_informative=informative, n_redundant=0,
        n_repeated=0, n_classes=classes, n_clusters_per_class=clusters, class_sep=sep,
        flip_y=0.0, random_state=seed)
    if noise > 0:
        rng = np.random.default_rng(seed)
        idx = rng.choice(n, size=int(round(noise * n)), replace=False)
        y[idx] = rng.integers(0, classes, size=len(idx))
    if shape:
        x = x.reshape(n, *shape)
    return from_arrays(x, y, name=f"synthetic:{name}", source=source)


# ---------------------------------------------------------------- arrays and tables
X_KEYS, Y_KEYS = ("x", "X", "data", "features"), ("y", "Y", "labels", "target", "targets")


@register_source("npz", options={"x_key": None, "y_key": None, "tasks": None},
                 example="data/my_arrays.npz (arrays x and y)")
def load_npz(path: str, opts: dict[str, Any], source: str) -> Dataset:
    """Arrays ``x`` and ``y``. Several tasks: ``y`` shaped ``(N, T)`` (``tasks`` names the
    columns, default ``task0..``), or ``y_key: [a, b]``, one array per task named by its key."""
    p = existing_path(path, source)
    with load_numpy(p, source) as arrays:
        keys = list(arrays.keys())

        def pick(key: str, defaults: tuple[str, ...], wanted: Any = None) -> np.ndarray:
            wanted = wanted or opts.get(key)
            for k in ([wanted] if wanted else defaults):
                if k in arrays:
                    return _array(partial(arrays.__getitem__, k), f"{p} (array {k!r})", source)
            raise UnknownNameError(source, f"data.{key}", wanted or defaults[0], keys)

        x = pick("x_key", X_KEYS)
        y_keys = opts.get("y_key")
        if isinstance(y_keys, (list, tuple)):  # one array per task
            labels: Any = {str(k): pick("y_key", Y_KEYS, str(k)) for k in y_keys}
        else:
            labels = pick("y_key", Y_KEYS)
    task_names = opt_names(opts, "tasks", source) if opts.get("tasks") is not None else None
    if isinstance(labels, np.ndarray) and labels.ndim == 2 and labels.shape[1] > 1:
        labels = task_columns(task_names, labels, source)
    elif task_names is not None and not isinstance(labels, dict):
        raise ConfigError(source, "data.tasks", task_names,
                          f"unset: the labels of {p.name} are one column (tasks name the "
                          "columns of (N, T) labels)")
    return from_arrays(x, labels, name=p.name, source=source)


@register_source("npy", options={"labels": None},
                 example="{source: data/x.npy, labels: data/y.npy}")
def load_npy(path: str, opts: dict[str, Any], source: str) -> Dataset:
    p = existing_path(path, source)
    labels = opts.get("labels")
    if not isinstance(labels, str):
        raise ConfigError(source, "data.labels", labels,
                          "the path of a .npy file of labels (a .npy file holds one array)")
    lp = Path(labels)
    if not lp.exists() and (p.parent / labels).exists():
        lp = p.parent / labels
    lp = existing_path(str(lp), source, "data.labels")
    x = _array(lambda: load_numpy(p, source), str(p), source)
    y = _array(lambda: load_numpy(lp, source), str(lp), source)
    return from_arrays(x, y, name=p.name, source=source)


def _array(get: Callable[[], Any], what: str, source: str) -> np.ndarray:
    """An array of numbers: object arrays (pickles) are never loaded."""
    try:
        arr = get()
    except NasdepthError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise ConfigError(source, "data", what, OBJECT_ARRAYS) from None
        raise ConfigError(source, "data", what, f"a readable array ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise ConfigError(source, "data", what, "one array (a .npy file)")
    return arr


@register_source("csv", options={
    "target": "target", "categorical": [], "drop": [], "group": None, "sep": ",",
}, example="{source: data/table.csv, target: label, categorical: [colour]}")
def load_csv(path: str, opts: dict[str, Any], source: str) -> Dataset:
    """A table: ``target`` is the label column (a list of columns: one task each, see
    :mod:`nasdepth.data.tasks`), ``categorical`` columns (and any other text column) are
    one-hot encoded, ``group`` is kept aside for group k-fold."""
    p = existing_path(path, source)
    df = read_table(p, source, opts.get("sep") or ",")
    columns = [str(c) for c in df.columns]
    target = opts.get("target")
    targets = opt_names(opts, "target", source) if isinstance(target, list) else [target]
    categorical, drop = opt_names(opts, "categorical", source), opt_names(opts, "drop", source)
    group = opts.get("group")
    for key, names in (("target", targets), ("categorical", categorical), ("drop", drop),
                       ("group", [group] if group is not None else [])):
        for col in names:
            if col not in df.columns:
                raise UnknownNameError(source, f"data.{key}", col, columns)
    for col in targets:
        y = df[col]
        if y.isna().any():
            raise ConfigError(source, "target", f"{int(y.isna().sum())} missing labels in "
                              f"column {col!r}", "a label in every row")
    groups = df[group].to_numpy() if group is not None else None
    x = table_features(df.drop(columns=[*targets, *drop, *([group] if group is not None else [])]),
                       categorical, source)
    if isinstance(target, list):  # several tasks, named by their columns
        labels = {check_task_name(c, source): df[c].to_numpy() for c in targets}
        return from_arrays(x, labels, name=p.name, groups=groups, source=source)
    return from_arrays(x, df[target].to_numpy(), name=p.name, groups=groups, source=source)


# ---------------------------------------------------------------- images
@register_source("imagefolder", options={"image_size": None, "grayscale": False},
                 example="{source: imagefolder:data/pets, image_size: 32}")
def load_imagefolder(path: str, opts: dict[str, Any], source: str) -> Dataset:
    """torchvision ``ImageFolder`` (one sub-folder per class), resized, scaled to [0, 1]."""
    import torch
    from torchvision import datasets
    from torchvision.transforms import v2

    root = existing_path(path, source)
    size = opt_shape(opts, "image_size", source, (2,))
    steps: list[Any] = [v2.ToImage(), v2.Grayscale() if opts.get("grayscale") else v2.RGB()]
    if size:
        steps.append(v2.Resize(list(size), antialias=True))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    try:
        folder = datasets.ImageFolder(str(root), transform=v2.Compose(steps))
    except (FileNotFoundError, OSError) as exc:
        raise ConfigError(source, "path", str(path),
                          f"a folder with one sub-folder of images per class ({exc})") from None
    images = []
    for i in range(len(folder)):
        try:
            images.append(folder[i][0])
        except (OSError, ValueError, SyntaxError) as exc:  # PIL: truncated or not an image
            raise ConfigError(source, "path", folder.samples[i][0],
                              f"a readable image ({type(exc).__name__}: {exc}); remove or "
                              "replace the file") from None
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) > 1:
        raise ConfigError(source, "data.image_size", None,
                          f"set: the images have {len(shapes)} different sizes")
    x = torch.stack(images)
    return from_arrays(x, np.asarray(folder.targets), name=f"imagefolder:{root.name}",
                       class_names=folder.classes, source=source)


TORCHVISION = {
    # name: (class name, files expected under root, what the files are)
    "MNIST": "MNIST/raw/train-images-idx3-ubyte (and the other three idx files)",
    "FashionMNIST": "FashionMNIST/raw/train-images-idx3-ubyte (and the other three idx files)",
    "KMNIST": "KMNIST/raw/train-images-idx3-ubyte (and the other three idx files)",
    "CIFAR10": "cifar-10-batches-py/ (the extracted python version)",
    "CIFAR100": "cifar-100-python/ (the extracted python version)",
}


@register_source("torchvision", options={"root": "data", "split": "train"},
                 example="{source: torchvision:MNIST, root: ~/data, limit: 2000}")
def load_torchvision(name: str, opts: dict[str, Any], source: str) -> Dataset:
    """A torchvision data set from files already under ``root`` (``download`` stays off: a
    study must never reach the network)."""
    from torchvision import datasets

    if name not in TORCHVISION:
        raise UnknownNameError(source, "torchvision data set", name, TORCHVISION)
    root = Path(str(opts.get("root") or "data")).expanduser()
    split = opts.get("split")
    if split not in ("train", "test"):
        raise UnknownNameError(source, "data.split", split, ["train", "test"])
    try:
        ds = getattr(datasets, name)(str(root), train=split == "train", download=False)
    except RuntimeError as exc:
        raise ConfigError(source, "data.root", str(root),
                          f"a folder holding {root / TORCHVISION[name]} (nasdepth never "
                          f"downloads; fetch it once with torchvision, download=True) "
                          f"[{exc}]") from None
    x = np.asarray(ds.data, dtype=np.float32) / 255.0
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # NHWC -> NCHW
    return from_arrays(x, np.asarray(ds.targets), name=f"torchvision:{name}",
                       class_names=[str(c) for c in ds.classes], source=source)
