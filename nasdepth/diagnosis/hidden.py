"""Data whose signal shallow models cannot see: the class of data deep networks exist for.

Three forms, one per input rank, each with its right answer known by construction:

- :func:`textures` (2-D): 16x16 Gaussian noise images; the class is which of four small
  zero-mean +-1 textures (horizontal stripes, vertical stripes, a checkerboard, diagonal
  stripes) sits at a random place. Every pixel has the same distribution in every class, so
  logistic regression and extra trees on the pixels stay at chance, while a CNN with global
  pooling finds the texture wherever it is.
- :func:`motifs` (1-D): 64-step noise sequences; the class is which of four zero-mean +-1
  motifs of 8 steps sits at a random offset (the 1-D twin).
- :func:`band` (flat): 40 Gaussian features; the class is whether the projection on one
  random oblique direction lies near 0 (an interaction spread over every feature: the classes
  differ in no feature's mean, a linear model sees nothing, and axis-aligned splits see too
  little; measured on 1,200 rows: extra trees z <= 2.5, a residual MLP with dropout and
  weight decay z ~20, accuracy ~0.8: ``groundtruth.HIDDEN_FORMS``). Oblique XORs
  and parities of feature signs were tried first: extra trees found the XOR, and the MLP
  could not learn a 3-way parity from this many rows.

``shuffle_labels`` permutes the labels (nothing to learn: the ground truth's data-limited
side). The generators are seeded and never download anything.
"""

from __future__ import annotations

import numpy as np

from nasdepth.data import Dataset, from_arrays

#: the four 4x4 textures of :func:`textures`: every one zero-mean, every pixel +-1
TEXTURE_SIZE = 4
#: texture amplitude over the noise's standard deviation (1)
TEXTURE_AMPLITUDE = 1.5
MOTIF_LENGTH = 8
MOTIF_AMPLITUDE = 1.5
BAND_FEATURES = 40
#: the median of |N(0, 1)|: half the rows fall within the band
BAND_HALF_WIDTH = 0.6745


def _textures() -> np.ndarray:
    i, j = np.mgrid[0:TEXTURE_SIZE, 0:TEXTURE_SIZE]
    pats = [np.where(i % 2 == 0, 1.0, -1.0),  # horizontal stripes
            np.where(j % 2 == 0, 1.0, -1.0),  # vertical stripes
            np.where((i + j) % 2 == 0, 1.0, -1.0),  # checkerboard
            np.where(((i + j) // 2) % 2 == 0, 1.0, -1.0)]  # diagonal stripes, period 4
    return np.stack(pats).astype(np.float32)


def _motifs() -> np.ndarray:
    t = np.arange(MOTIF_LENGTH)
    pats = [np.where(t % 2 == 0, 1.0, -1.0),  # alternating
            np.where((t // 2) % 2 == 0, 1.0, -1.0),  # period 4
            np.where(t < MOTIF_LENGTH // 2, 1.0, -1.0),  # a step down
            np.where((t < 2) | (t >= 6), 1.0, -1.0)]  # a bump down in the middle
    return np.stack(pats).astype(np.float32)


def _finish(x: np.ndarray, y: np.ndarray, name: str, rng: np.random.Generator,
            shuffle_labels: bool) -> Dataset:
    if shuffle_labels:
        y = rng.permutation(y)
    return from_arrays(x.astype(np.float32), y.astype(np.int64),
                       name=name + (":shuffled" if shuffle_labels else ""))


def textures(seed: int, n: int = 600, size: int = 16, shuffle_labels: bool = False) -> Dataset:
    """``n`` 1 x ``size`` x ``size`` noise images, each with one of four textures at a random
    place; the label says which."""
    rng = np.random.default_rng(seed)
    pats = _textures() * TEXTURE_AMPLITUDE
    y = rng.integers(0, len(pats), n)
    x = rng.normal(0.0, 1.0, (n, 1, size, size)).astype(np.float32)
    rows = rng.integers(0, size - TEXTURE_SIZE + 1, n)
    cols = rng.integers(0, size - TEXTURE_SIZE + 1, n)
    for k in range(n):
        r, c = rows[k], cols[k]
        x[k, 0, r:r + TEXTURE_SIZE, c:c + TEXTURE_SIZE] += pats[y[k]]
    return _finish(x, y, f"hidden:textures:{seed}", rng, shuffle_labels)


def motifs(seed: int, n: int = 600, length: int = 64, shuffle_labels: bool = False) -> Dataset:
    """``n`` 1 x ``length`` noise sequences, each with one of four motifs at a random offset;
    the label says which."""
    rng = np.random.default_rng(seed)
    pats = _motifs() * MOTIF_AMPLITUDE
    y = rng.integers(0, len(pats), n)
    x = rng.normal(0.0, 1.0, (n, 1, length)).astype(np.float32)
    at = rng.integers(0, length - MOTIF_LENGTH + 1, n)
    for k in range(n):
        x[k, 0, at[k]:at[k] + MOTIF_LENGTH] += pats[y[k]]
    return _finish(x, y, f"hidden:motifs:{seed}", rng, shuffle_labels)


def band(seed: int, n: int = 1200, features: int = BAND_FEATURES,
         shuffle_labels: bool = False) -> Dataset:
    """``n`` rows of ``features`` standard normal features; the label says whether the
    projection on one random oblique direction (a unit vector over every feature, fixed by
    ``seed``) lies within its median distance of 0: a band through the origin."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (n, features)).astype(np.float32)
    u = rng.normal(0.0, 1.0, features)
    u /= np.linalg.norm(u)
    y = (np.abs(x @ u) < BAND_HALF_WIDTH).astype(np.int64)
    return _finish(x, y, f"hidden:band:{seed}", rng, shuffle_labels)


#: name -> generator, for the benchmarks and the study files (``hidden:textures`` ...)
HIDDEN = {"textures": textures, "motifs": motifs, "band": band}
