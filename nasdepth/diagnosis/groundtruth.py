"""Ground-truth cases: runs whose right verdict is known by construction.

The test suite diagnoses each over several seeds and prints the confusion matrix;
``benchmarks/diagnose_thresholds.py`` prints their signals, which is how the thresholds in
``rules.THRESHOLDS`` were chosen, and the reliability of the confidences. Every case takes
seconds on one CPU core. Each run is diagnosed as a user's would be: ``diagnose(result, data)``
with the default controls (the shallow baseline, on the run's own splits).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits, make_classification

from nasdepth.arch import ArchConfig
from nasdepth.data import CVConfig, Dataset, from_arrays
from nasdepth.diagnosis.api import diagnose
from nasdepth.diagnosis.diagnosis import Diagnosis
from nasdepth.probes import ProbeHook
from nasdepth.train import NonFiniteLossError, TrainConfig, cross_validate


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


def long_range(seed: int, n: int = 600, length: int = 100, shuffle_labels: bool = False
               ) -> Dataset:
    """A long-range dependency: the label is the sign of the first step (+-1); the other
    ``length - 1`` steps are noise (std 0.1) that says nothing about it. A model must carry the
    first value through every later step; ``shuffle_labels`` draws labels independent of the
    input instead (nothing to learn)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0.0, 0.1, (n, 1, length)).astype(np.float32)
    x[:, 0, 0] = np.where(y == 1, 1.0, -1.0)
    if shuffle_labels:
        y = rng.permutation(y)
    return from_arrays(x, y, name=f"synthetic:long_range:{length}:{seed}"
                       + (":shuffled" if shuffle_labels else ""))


def rnn(block: str, width: int, *, depth: int = 1, gate_bias: float | None = None,
        nonlinearity: str = "tanh") -> ArchConfig:
    """A stack of recurrent layers read at the last step (no stem, no normalization)."""
    return ArchConfig.from_dict({"stages": [{"block": block, "depth": depth, "width": width,
                                             "norm": "none", "gate_bias": gate_bias,
                                             "nonlinearity": nonlinearity}],
                                 "stem": [], "head_pool": "last", "skip": False})
def sequences(seed: int, n: int = 500) -> Dataset:
    """MNIST-1D (10 classes of 40-step 1-D digit shapes; generated, never downloaded), a seeded
    draw of ``n`` samples (80% of them kept, as the generator's ``train`` part)."""
    from nasdepth.data import load_data

    return load_data({"source": "mnist1d", "n_samples": n, "seed": seed})


def mlp(block: str, depth: int, width: int, *, norm: str = "none", act: str = "relu",
        skip: bool = False, init: str = "default", dropout: float = 0.0) -> ArchConfig:
    """One stage of ``depth`` blocks (3x3 kernels where the data are images or sequences)."""
    return ArchConfig.from_dict({"stages": [{"block": block, "depth": depth, "width": width,
                                             "norm": norm, "activation": act,
                                             "dropout": dropout}],
                                 "skip": skip, "init": init})


#: the same config: the data's rank makes its blocks convolutions
cnn = mlp


def adamw(lr: float) -> TrainConfig:
    """AdamW as a new user runs it: the default schedule and weight decay, batches of 32."""
    return TrainConfig(optimizer="adamw", lr=lr, batch_size=32)


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
    # under-trained on learnable data: residual + BatchNorm networks whose budget ends while
    # the loss still falls (a learning rate far too small for the epochs, or one epoch); the
    # shallow baseline learns on these data, so none of them is data-limited
    *(Case(f"{family}_undertrained_{budget}", "undertrained", arch, data, adamw(lr), epochs)
      for family, arch, data in (
          ("mlp", mlp("residual", 4, 32, norm="batch", skip=True), learnable),
          ("cnn1d", cnn("residual", 2, 16, norm="batch", skip=True), sequences),
          ("cnn", cnn("residual", 2, 16, norm="batch", skip=True), digits))
      for budget, lr, epochs in (("lr3e-5", 3e-5, 3), ("lr1e-4", 1e-4, 2),
                                 ("one_epoch", 1e-3, 1))),
)

# Sequences of 100 steps (benchmarks/diagnose_through_time.py prints their signals): a
# vanilla tanh RNN passes ~1e-25 of the last step's gradient back to the first step, so it
# cannot learn a label set there, while an LSTM of the same width with memory at initialization
# (forget-gate bias 5) learns it. On labels independent of the input the RNN's gradient vanishes
# through time just the same: only a control (the shallow baseline, on by default, which finds
# the signal in the first step or finds none) tells the two apart.
SEQ_ADAM = TrainConfig(lr=1e-2, batch_size=32, weight_decay=0.0)
SEQUENCE_CASES: tuple[Case, ...] = (
    Case("rnn_tanh_long_range", "vanishing_through_time", rnn("rnn", 8), long_range,
         SEQ_ADAM, 8),
    Case("lstm_long_range", "healthy", rnn("lstm", 8, gate_bias=5.0), long_range,
         SEQ_ADAM, 8),
    Case("rnn_tanh_random_labels", "data_limited_plateau", rnn("rnn", 8),
         lambda seed: long_range(seed, shuffle_labels=True), SEQ_ADAM, 8),
    Case("lstm_random_labels", "data_limited_plateau", rnn("lstm", 8, gate_bias=5.0),
         lambda seed: long_range(seed, shuffle_labels=True), SEQ_ADAM, 8),
    # a relu RNN at AdamW lr 0.2: the gradient grows by millions back through time within
    # the first epoch and the loss overflows (advice: clip gradients)
    Case("rnn_relu_lr_far_too_large", "exploding_gradients",
         rnn("rnn", 32, nonlinearity="relu"), lambda seed: long_range(seed, n=400),
         TrainConfig(optimizer="adamw", lr=0.2, batch_size=32, weight_decay=0.0), 4),
)


# Signal that shallow models cannot see (:mod:`nasdepth.diagnosis.hidden`): a texture anywhere
# in a 16x16 noise image, a motif at any offset in a 64-step sequence, a band along an oblique
# direction of 40 features. The shallow baseline is at chance on all of them, so it cannot
# tell an under-trained run from data without signal; the reference network can (it runs for
# the under-trained and the shuffled-label cases: their first reading is data-limited).
# ``benchmarks/verify_hidden.py`` re-checks each label with plain PyTorch.
def _hidden(form: str, shuffle: bool = False) -> Callable[[int], Dataset]:
    from nasdepth.diagnosis.hidden import HIDDEN

    return lambda seed: HIDDEN[form](seed, shuffle_labels=shuffle)


#: the recipe that trains the textures' and motifs' network soundly
HIDDEN_SOUND = TrainConfig(lr=3e-3, batch_size=32, weight_decay=0.0)
#: the band's: on 600 training rows of 40 features an unregularized MLP fits noise as it finds
#: the band and ends overconfident (validation loss 1.3-1.7 label entropies at accuracy
#: 0.70-0.73: benchmarks/verify_hidden.py --seeds 3); dropout 0.5 in each block and AdamW's
#: weight decay 0.1 over 40 epochs learn it and stay calibrated (accuracy 0.79-0.82, validation
#: loss 0.63-0.78 label entropies at the end, seeds 0-2: diagnose_thresholds.py --hidden)
BAND_SOUND = TrainConfig(lr=3e-3, batch_size=32, weight_decay=0.1)

#: (form, the network that can learn it, its sound recipe and epochs, the deep plain sigmoid
#: network); the under-trained, healthy and shuffled-label cases of a form share its network
HIDDEN_FORMS = (
    ("textures", cnn("residual", 4, 16, norm="batch", skip=True, init="kaiming"),
     HIDDEN_SOUND, 10, cnn("plain", 10, 8, act="sigmoid")),
    ("motifs", cnn("residual", 4, 16, norm="batch", skip=True, init="kaiming"),
     HIDDEN_SOUND, 10, cnn("plain", 10, 8, act="sigmoid")),
    ("band", mlp("residual", 2, 64, norm="batch", skip=True, init="kaiming", dropout=0.5),
     BAND_SOUND, 40, mlp("plain", 12, 32, act="sigmoid")),
)
HIDDEN_CASES: tuple[Case, ...] = tuple(
    case for form, net, sound, epochs, sigmoid in HIDDEN_FORMS for case in (
        Case(f"hidden_{form}_undertrained", "undertrained", net, _hidden(form),
             adamw(1e-4), 2),
        Case(f"hidden_{form}_sigmoid_plain_deep", "vanishing_gradients", sigmoid,
             _hidden(form), ADAM, 3),
        Case(f"hidden_{form}_healthy", "healthy", net, _hidden(form), sound, epochs),
        Case(f"hidden_{form}_shuffled_labels", "data_limited_plateau", net,
             _hidden(form, shuffle=True), ADAM, 4),
    ))


def run_case(case: Case, seed: int, *, folds: int = 2) -> Diagnosis:
    """Train ``case`` with probes on ``folds`` splits fixed by ``seed`` (split seed ``seed + 7``,
    distinct from the model seed, as a study may have it) and diagnose it with the defaults."""
    data = case.data(seed)
    splits = CVConfig(folds=folds, seed=seed + 7).resolve(data)
    hook = ProbeHook()
    try:
        result = cross_validate(case.arch, data, cv=splits, epochs=case.epochs, seed=seed,
                                training=case.training, hooks=[hook])
    except NonFiniteLossError as exc:
        hook.close(str(exc))
        return diagnose(hook, data, cv=splits)
    return diagnose(result, data)
