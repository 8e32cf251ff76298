"""``EpochProgress``: a training hook that shows a progress bar over the epochs of every fold
(the commands that train outside a study: ``diagnose --data``, ``export``'s refit); a study
shows its own bars per trial and per fold.

The bar is off where the output is not a terminal (tqdm's ``disable=None``), so logs and CI
output stay clean. It only reads each epoch's record: the engine keeps its choices (the
fold-parallel engine included) and the training its result.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn
from tqdm.auto import tqdm

from nasdepth.train.hooks import TrainHook


class EpochProgress(TrainHook):
    """One bar of ``folds * epochs`` epochs (folds that stop early leave it short), with the
    last epoch's fold and validation accuracy. ``close()`` when the training is done."""

    def __init__(self, folds: int, epochs: int, desc: str = "training",
                 disable: bool | None = None) -> None:
        self.bar = tqdm(total=folds * epochs, desc=desc, unit="epoch", leave=False,
                        disable=disable)
        self.folds = folds

    def on_epoch_end(self, model: nn.Module, fold: int, record: dict[str, Any]) -> None:
        self.bar.update(1)
        self.bar.set_postfix(fold=f"{fold + 1}/{self.folds}",
                             acc=f"{float(record['val_accuracy']):.3f}", refresh=False)

    def close(self) -> None:
        self.bar.close()


@contextmanager
def epoch_progress(on: bool, folds: int, epochs: int, desc: str
                   ) -> Iterator[list[TrainHook]]:
    """The hooks that show the bar for the block's training (none unless ``on``), the bar
    closed when the block ends, however it ends."""
    bar = EpochProgress(folds, epochs, desc) if on else None
    try:
        yield [] if bar is None else [bar]
    finally:
        if bar is not None:
            bar.close()
