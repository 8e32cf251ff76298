"""Ground-truth cases: runs whose right verdict is known by construction.

The test suite diagnoses each over several seeds and prints the confusion matrix;
``benchmarks/diagnose_thresholds.py`` prints their signals, which is how the thresholds in
``rules.THRESHOLDS`` were chosen. Every case takes seconds on one CPU core.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits, make_classification

from nasdepth.arch import ArchConfig
from nasdepth.data import Dataset, from_arrays
from nasdepth.train import TrainConfig


def learnable(seed: int, n: int = 400) -> Dataset:
    """Three well separated classes in 16 features, 8 of them informative."""
    x, y = make_classification(n_samples=n, n_features=16, n_informative=8, n_redundant=2,
                               n_classes=3, class_sep=1.5, random_state=seed)
    return from_arrays(x.astype(np.float32), y, name=f"synthetic:learnable:{seed}")


def random_labels(seed: int, n: int = 400) -> Dataset:
    """The same features with labels drawn independently of them: nothing to learn."""
    x, _ = make_classification(n_samples=n, n_features=16, n_informative=8, n_redundant=2,
                               n_classes=3, class_sep=1.5, random_state=seed)
    y = np.random.default_rng(seed).integers(0, 3, n)
    return from_arrays(x.astype(np.float32), y, name=f"synthetic:random_labels:{seed}")


def tiny_noisy(seed: int) -> Dataset:
    """Few samples with 20% flipped labels: a large model can memorize them."""
    x, y = make_classification(n_samples=160, n_features=16, n_informative=6, n_redundant=2,
                               n_classes=2, class_sep=1.5, flip_y=0.1, random_state=seed)
    return from_arrays(x.astype(np.float32), y, name=f"synthetic:tiny:{seed}")


def digits(seed: int, n: int = 360, shuffle_labels: bool = False) -> Dataset:
    """Scikit-learn's 8x8 digits as 1x8x8 images (a seeded subset)."""
    bunch = load_digits()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(bunch.target), n, replace=False)
    x = bunch.data[idx].reshape(-1, 1, 8, 8).astype(np.float32)
    y = bunch.target[idx].astype(np.int64)
    if shuffle_labels:
        y = rng.permutation(y)
    return from_arrays(x, y, name=f"digits:{seed}" + (":shuffled" if shuffle_labels else ""))


def mlp(block: str, depth: int, width: int, *, norm: str = "none", act: str = "relu",
        skip: bool = False, init: str = "default") -> ArchConfig:
    return ArchConfig.from_dict({"stages": [{"block": block, "depth": depth, "width": width,
                                             "norm": norm, "activation": act}],
                                 "skip": skip, "init": init})


def cnn(block: str, depth: int, width: int, *, norm: str = "none", act: str = "relu",
        skip: bool = False, init: str = "default") -> ArchConfig:
    return ArchConfig.from_dict({"stages": [{"block": block, "depth": depth, "width": width,
                                             "norm": norm, "activation": act,
                                             "kernel_size": 3}],
                                 "skip": skip, "init": init})


@dataclass(frozen=True)
class Case:
    name: str
    expected: str
    arch: ArchConfig
    data: Callable[[int], Dataset]
    training: TrainConfig
    epochs: int


ADAM = TrainConfig(lr=3e-3, batch_size=32, weight_decay=0.0)

CASES: tuple[Case, ...] = (
    Case("mlp_sigmoid_plain_deep", "vanishing_gradients",
         mlp("plain", 12, 32, act="sigmoid"), learnable, ADAM, 3),
    Case("mlp_sigmoid_residual_bn", "healthy",
         mlp("residual", 6, 32, act="sigmoid", norm="batch", skip=True), learnable, ADAM, 6),
    Case("mlp_relu_small_init_deep", "vanishing_gradients",
         mlp("plain", 20, 32), learnable, ADAM, 3),
    Case("mlp_relu_he_init_deep", "healthy",
         mlp("plain", 20, 32, init="kaiming"), learnable, ADAM, 6),
    Case("mlp_residual_random_labels", "data_limited_plateau",
         mlp("residual", 4, 32, norm="batch", skip=True), random_labels, ADAM, 4),
    Case("mlp_residual_memorizes_noise", "data_limited_plateau",
         mlp("residual", 3, 64, norm="batch", skip=True), lambda seed: random_labels(seed, 300),
         TrainConfig(lr=3e-3, batch_size=32, weight_decay=0.0, schedule="none"), 15),
    Case("mlp_tiny_data_large_model", "overfitting",
         mlp("residual", 3, 96, norm="batch", skip=True), tiny_noisy,
         TrainConfig(lr=1e-3, batch_size=16, weight_decay=0.0, schedule="none"), 30),
    Case("mlp_lr_far_too_large", "exploding_gradients",
         mlp("plain", 6, 64, init="kaiming"), learnable,
         TrainConfig(optimizer="sgd", lr=20.0, batch_size=32, weight_decay=0.0), 6),
    # AdamW at lr 1: the first steps move every weight by about 1, far beyond its scale; the
    # gradients jump by 5-8 decades and the loss to ~1e8 label entropies, yet stay finite
    Case("mlp_adamw_lr_far_too_large", "exploding_gradients",
         mlp("plain", 6, 64, init="kaiming"), learnable,
         TrainConfig(optimizer="adamw", lr=1.0, batch_size=32, weight_decay=0.0), 3),
    Case("mlp_lr_1e-6", "optimization_problem",
         mlp("residual", 4, 32, norm="batch", skip=True), learnable,
         TrainConfig(lr=1e-6, batch_size=32, weight_decay=0.0), 3),
    Case("cnn_sigmoid_plain_deep", "vanishing_gradients",
         cnn("plain", 10, 8, act="sigmoid"), digits, ADAM, 3),
    Case("cnn_residual_bn", "healthy",
         cnn("residual", 2, 16, norm="batch", skip=True), digits, ADAM, 6),
    Case("cnn_adamw_lr_far_too_large", "exploding_gradients",
         cnn("plain", 3, 8, init="kaiming"), digits,
         TrainConfig(optimizer="adamw", lr=1.0, batch_size=32, weight_decay=0.0), 3),
    Case("cnn_residual_shuffled_labels", "data_limited_plateau",
         cnn("residual", 2, 16, norm="batch", skip=True),
         lambda seed: digits(seed, shuffle_labels=True), ADAM, 4),
)
