"""The compute accounting of ``benchmarks/bench_cv.py``: FLOP counts against hand counts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from torch.utils.flop_counter import FlopCounterMode

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_cv.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_cv", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_cv"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cases(bench: ModuleType) -> dict[str, object]:
    return {c.kind: c for c in bench.cases("all", 500)}


def linear_flops(sizes: list[int]) -> tuple[int, int]:
    """Per sample: forward 2*in*out per layer; backward the weight gradient (2*in*out) on
    every layer and the input gradient (2*in*out) on all but the first (its input is data)."""
    layers = list(zip(sizes[:-1], sizes[1:], strict=True))
    fwd = sum(2 * i * o for i, o in layers)
    return 2 * fwd + sum(2 * i * o for i, o in layers[1:]), fwd


def test_mlp_flops_match_a_hand_count(bench: ModuleType, cases: dict[str, object]) -> None:
    # stem 64->128, eight 128->128 blocks, head 128->4: ten linear layers
    train, fwd = linear_flops([64] + [128] * 9 + [4])
    assert (train, fwd) == (822_272, 279_552)
    assert bench.sample_flops(cases["mlp"], 64) == (train, fwd)
    assert len(bench.layer_shapes(cases["mlp"], 64)) == 10


def test_cnn_flops_match_a_hand_count(bench: ModuleType, cases: dict[str, object]) -> None:
    # 3x3 convolutions on 8x8 maps, padding 1: 2*9*cin*cout*64 per sample; stem 1->32, six
    # 32->32 in three residual blocks; head 32->10 after pooling
    stem, conv, head = 2 * 9 * 1 * 32 * 64, 2 * 9 * 32 * 32 * 64, 2 * 32 * 10
    fwd = stem + 6 * conv + head
    train = 2 * stem + 3 * 6 * conv + 3 * head
    assert bench.sample_flops(cases["cnn"], 64) == (train, fwd)
    assert len(bench.layer_shapes(cases["cnn"], 64)) == 7


def test_cv_samples_follow_each_variants_batches(bench: ModuleType,
                                                 cases: dict[str, object]) -> None:
    # digits: 1797 rows, 5 stratified folds of 359-360 validation rows
    plain = bench.cv_samples(cases["cnn"], "plain", 5, 2, 64)
    engine = bench.cv_samples(cases["cnn"], "engine", 5, 2, 64)
    assert plain == (2 * 5 * 1408, 2 * 1797)  # drop_last: 22 batches of 64 of 1437-1438
    assert engine == (5 * 2 * 1437, 2 * 1797 + 4 * 1797)  # the smallest fold, all batches


def test_kernel_rate_counts_the_stacked_layers(bench: ModuleType,
                                               cases: dict[str, object]) -> None:
    steps = []
    orig = bench._rate_over
    bench._rate_over = lambda s: steps.extend(s) or 1.0
    try:
        bench.layer_rate(cases["mlp"], 64, folds=5)
    finally:
        bench._rate_over = orig
    total = 0
    for _, counted in steps:
        with FlopCounterMode(display=False) as counter:
            counted()
        total += counter.get_total_flops()
    assert total == 5 * 64 * bench.sample_flops(cases["mlp"], 64)[0]


def test_profile_phases_group_the_operators_a_cv_runs() -> None:
    """``benchmarks/profile_cv.py``'s phases: the names torch.profiler gives the engine's
    operators land in their phase, each once (self time: nothing counted twice)."""
    spec = importlib.util.spec_from_file_location(
        "profile_cv", BENCH.with_name("profile_cv.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = {
        "aten::convolution_backward": "convolutions", "aten::mkldnn_convolution": "convolutions",
        "aten::bmm": "matrix products", "aten::baddbmm": "matrix products",
        "aten::native_batch_norm_backward": "normalization",
        "aten::threshold_backward": "activations", "aten::clamp_min": "activations",
        "Optimizer.step#AdamW.step": "optimizer", "aten::_fused_adamw_": "optimizer",
        "aten::copy_": "copies and allocation", "aten::nll_loss_forward": "loss and metrics",
        "autograd::engine::evaluate_function: ConvolutionBackward0": "the rest",
    }
    for name, phase in expected.items():
        assert module.phase_of(name) == phase, name


def test_the_benchmark_names_the_variant_auto_picks(bench: ModuleType,
                                                    cases: dict[str, object]) -> None:
    """MLP folds run side by side on a CPU; the residual 3x32 CNN's 32-channel convolutions
    are in the measured range, which the test suite answers with NASDEPTH_CPU_GROUPED=0."""
    assert bench.auto_variant(cases["mlp"], 5, 64, "cpu").startswith("engine-par")
    assert bench.auto_variant(cases["cnn"], 5, 64, "cpu").startswith("engine-seq")
