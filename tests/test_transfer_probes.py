"""The probes and the diagnosis skip frozen blocks: a frozen block receives no gradient by
design, which is not a vanishing gradient."""

from __future__ import annotations

from pathlib import Path

import torch

from nasdepth.arch import build_model
from nasdepth.diagnosis import diagnose
from nasdepth.diagnosis.groundtruth import CASES
from nasdepth.probes import ProbeHook
from nasdepth.train import cross_validate
from nasdepth.train.candidate import transfer_candidate
from nasdepth.train.transfer import TransferConfig

CASE = next(c for c in CASES if c.name == "mlp_sigmoid_plain_deep")  # 12 sigmoid blocks


def test_frozen_blocks_are_not_vanishing(tmp_path: Path) -> None:
    data = CASE.data(0)
    training = CASE.training.with_epochs(CASE.epochs)
    scratch_probe = ProbeHook()
    scratch = cross_validate(CASE.arch, data, folds=2, training=training,
                             hooks=[scratch_probe], parallel=False)
    # trained whole, the deep plain sigmoid stack is the vanishing-gradient case
    assert diagnose(scratch, controls="none").verdict == "vanishing_gradients"
    n_units = len(scratch_probe.traces[0].blocks)

    # the same network with its lower ten blocks frozen (weights from a checkpoint of it)
    torch.manual_seed(0)
    path = tmp_path / "deep.pt"
    torch.save(build_model(CASE.arch, data.input_shape, data.num_classes).state_dict(), path)
    probe = ProbeHook()
    tuned = cross_validate(transfer_candidate(TransferConfig(str(path), "fine_tune", 2),
                                              CASE.arch), data,
                           folds=2, training=training, hooks=[probe])
    frozen = tuned.settings["transfer"]["frozen"]
    assert len(frozen) == 11  # the stem and ten blocks
    blocks = probe.traces[0].blocks
    assert not set(blocks) & set(frozen)  # the probes profile the trainable units only
    assert blocks == ["block10.PlainBlock", "block11.PlainBlock", "head"]
    assert len(blocks) < n_units
    verdict = diagnose(tuned, controls="none")
    assert verdict.verdict != "vanishing_gradients"
