"""Sequence architectures: recurrent and attention blocks, their readouts and options, the
probes through time (checked against an unrolled cell), the search-space schema and the
sequence study files. The registry-driven checks (shapes, gradients, skip on/off, every norm)
are in test_arch.py."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from nasdepth.arch import ArchConfig, StageConfig, build_model, count_parameters
from nasdepth.arch.blocks.attention import AttentionPool, SequenceEmbedding, TransformerBlock
from nasdepth.arch.blocks.recurrent import LastStep, RecurrentBlock, TimeTap, sample_steps
from nasdepth.diagnosis.groundtruth import long_range, rnn
from nasdepth.errors import ConfigError, UnknownNameError
from nasdepth.probes import Probe, ProbeHook
from nasdepth.probes.time import time_frame, time_profile, time_signals, time_units
from nasdepth.space import load_space
from nasdepth.train import TrainConfig, cross_validate

ROOT = Path(__file__).resolve().parents[1]
SEQ = (3, 12)  # 3 features per step, 12 steps


def seq_arch(block: str, *, skip: bool = True, head_pool: str = "avg", **opts: object
             ) -> ArchConfig:
    fields: dict = {"depth": 2, "width": 8, "norm": "layer", **opts}
    stage = StageConfig(block=block, **fields)
    return ArchConfig(stages=(stage,), stem=(), skip=skip, head_pool=head_pool)


def grads_everywhere(model: nn.Module, out: torch.Tensor) -> None:
    out.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("block", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("readout", ["last", "avg", "attention", "max"])
def test_bidirectional_recurrent_blocks_and_every_readout(block: str, readout: str) -> None:
    cfg = seq_arch(block, head_pool=readout, bidirectional=True)
    torch.manual_seed(0)
    model = build_model(cfg, SEQ, 4)
    rec = [m for m in model.modules() if isinstance(m, RecurrentBlock)]
    assert len(rec) == 2 and all(r.rnn_reverse is not None for r in rec)
    assert rec[0].rnn.hidden_size == 4  # each direction gets half of width 8
    x = torch.randn(5, *SEQ)
    out = model(x)
    assert out.shape == (5, 4) and torch.isfinite(out).all()
    grads_everywhere(model, out)
    pool = model.head[0]
    if readout == "last":  # the forward half at the end, the reverse half at the start
        assert isinstance(pool, LastStep) and pool.split
        feats = model.blocks(model.stem(x))
        assert torch.equal(pool(feats), torch.cat([feats[:, :4, -1], feats[:, 4:, 0]], 1))
    if readout == "attention":
        assert isinstance(pool, AttentionPool)


def test_reverse_direction_reads_the_sequence_backwards() -> None:
    """The reverse layer's state at step 0 has seen the whole sequence; the forward one's
    only the first step."""
    torch.manual_seed(0)
    # (no norm: a LayerNorm over the features would mix the two directions)
    model = build_model(seq_arch("gru", bidirectional=True, head_pool="last", norm="none"), SEQ,
                        4).eval()
    block = model.blocks[0]
    x = torch.randn(2, *SEQ)
    x2 = x.clone()
    x2[..., -1] += 1.0  # change the last step only
    a, b = block(x), block(x2)
    assert torch.allclose(a[:, :4, 0], b[:, :4, 0])  # forward at step 0: unchanged
    assert not torch.allclose(a[:, 4:, 0], b[:, 4:, 0])  # reverse at step 0: changed


def test_rnn_nonlinearity_and_lstm_gru_gate_bias() -> None:
    model = build_model(seq_arch("rnn", nonlinearity="relu"), SEQ, 3)
    assert model.blocks[0].rnn.nonlinearity == "relu"
    lstm = build_model(seq_arch("lstm"), SEQ, 3).blocks[0].rnn
    total = lstm.bias_ih_l0 + lstm.bias_hh_l0  # gates (input, forget, cell, output)
    assert torch.allclose(total[8:16], torch.ones(8))  # forget bias 1 by default
    lstm5 = build_model(seq_arch("lstm", gate_bias=5.0), SEQ, 3).blocks[0].rnn
    assert torch.allclose((lstm5.bias_ih_l0 + lstm5.bias_hh_l0)[8:16], torch.full((8,), 5.0))
    gru = build_model(seq_arch("gru", gate_bias=3.0), SEQ, 3).blocks[0].rnn
    assert torch.allclose((gru.bias_ih_l0 + gru.bias_hh_l0)[8:16], torch.full((8,), 3.0))


@pytest.mark.parametrize("block", ["rnn", "lstm", "gru", "transformer"])
def test_skip_alone_switches_sequence_blocks_to_their_plain_twin(block: str) -> None:
    cfg = seq_arch(block)
    twin = replace(cfg, skip=False)
    torch.manual_seed(0)
    res, plain = build_model(cfg, (8, 12), 3), build_model(twin, (8, 12), 3)
    assert count_parameters(res) == count_parameters(plain)  # identity shortcuts: no weights
    assert all(b.has_shortcut for b in res.blocks if isinstance(b, (RecurrentBlock,
                                                                    TransformerBlock)))
    assert not any(getattr(b, "has_shortcut", False) for b in plain.blocks)
    plain.load_state_dict(res.state_dict())
    res.eval(), plain.eval()
    x = torch.randn(3, 8, 12)
    assert not torch.allclose(res(x), plain(x))  # same weights, the shortcuts carry signal


def test_transformer_without_skip_has_no_path_around_its_sublayers() -> None:
    """Zero the feed-forward output: a residual layer still passes its input, the plain twin
    outputs a constant."""
    for skip in (True, False):
        torch.manual_seed(0)
        block = build_model(seq_arch("transformer", skip=skip), (8, 12), 3).blocks[1]
        assert isinstance(block, TransformerBlock)
        with torch.no_grad():
            block.ff[-1].weight.zero_(), block.ff[-1].bias.zero_()
        block.eval()
        depends = not torch.allclose(block(torch.randn(2, 8, 12)), block(torch.randn(2, 8, 12)))
        assert depends == skip


def test_transformer_embedding_projects_and_encodes_positions() -> None:
    cfg = ArchConfig(stages=(StageConfig(block="transformer", depth=1, width=8, norm="layer",
                                         heads=2, dropout=0.0),
                             StageConfig(block="transformer", depth=1, width=16, norm="layer",
                                         heads=2, stride=2)), stem=())
    model = build_model(cfg, SEQ, 3)
    names = [n for n, _ in model.named_blocks()]
    # one embedding opens the run of transformer stages; the wider stage projects itself
    assert names[1:4] == ["block0.SequenceEmbedding", "block1.TransformerBlock",
                          "block2.TransformerBlock"]
    assert isinstance(model.blocks[0].proj, nn.Conv1d) and model.blocks[2].proj is not None
    assert model(torch.randn(2, *SEQ)).shape == (2, 3)
    # without a positional encoding, mean pooling cannot tell the steps' order
    for positional, invariant in (("none", True), ("sinusoidal", False)):
        one = replace(cfg, stages=(replace(cfg.stages[0], positional=positional),))
        torch.manual_seed(0)
        m = build_model(one, SEQ, 3).eval()
        x = torch.randn(2, *SEQ)
        same = torch.allclose(m(x), m(x.flip(-1)), atol=1e-5)
        assert same == invariant, positional


def test_pre_and_post_norm_differ() -> None:
    torch.manual_seed(0)
    pre = build_model(seq_arch("transformer", norm_first=True), SEQ, 3).eval()
    post = build_model(seq_arch("transformer", norm_first=False), SEQ, 3).eval()
    post.load_state_dict(pre.state_dict())
    x = torch.randn(2, *SEQ)
    assert not torch.allclose(pre(x), post(x))
    emb = post.blocks[0]
    assert isinstance(emb, SequenceEmbedding)


@pytest.mark.parametrize(("cfg", "shape", "key", "match"), [
    (seq_arch("transformer", heads=3), SEQ, "heads", "divides the stage width 8. Got 3"),
    (seq_arch("lstm", bidirectional=True, width=7), SEQ, "width", "an even int"),
    (seq_arch("rnn", nonlinearity="sigmoid"), SEQ, "nonlinearity", "relu, tanh"),
    (seq_arch("transformer", positional="learnt"), SEQ, "positional", "none, sinusoidal"),
    (seq_arch("gru", head_pool="last"), (3, 8, 8), "block", "runs on 1-D"),
    (replace(seq_arch("plain"), head_pool="last"), (3, 8, 8), "head_pool", "1-D (N, C, L)"),
    (replace(seq_arch("gru", head_pool="attention"), head_pool_size=2), SEQ, "head_pool_size",
     "1 with head_pool 'attention'"),
    (seq_arch("lstm", gate_bias=float("nan")), SEQ, "gate_bias", "a number"),
])
def test_impossible_sequence_options_are_config_errors(cfg: ArchConfig, shape: tuple[int, ...],
                                                       key: str, match: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_model(cfg, shape, 3)
    msg = str(err.value)
    assert msg.startswith(f"The '{key}' value in the architecture must be") and match in msg


def test_unknown_nonlinearity_suggests_the_closest() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'tanh'"):
        build_model(seq_arch("rnn", nonlinearity="tahn"), SEQ, 3)


def test_older_config_dicts_load_and_new_fields_round_trip() -> None:
    old = {"stages": [{"block": "residual", "depth": 2, "width": 16}], "skip": True}
    cfg = ArchConfig.from_dict(old)
    assert cfg.stages[0].bidirectional is False and cfg.head_pool == "avg"
    new = seq_arch("lstm", bidirectional=True, gate_bias=3.0, head_pool="attention")
    back = ArchConfig.from_dict(json.loads(json.dumps(new.to_dict())))
    assert back == new


# --- probes through time -----------------------------------------------------------------------

def test_sample_steps_cover_both_ends() -> None:
    assert sample_steps(100, 8) == [0, 14, 28, 42, 57, 71, 85, 99]
    assert sample_steps(5, 8) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("block", ["rnn", "lstm", "gru"])
def test_time_tap_is_the_gradient_wrt_the_hidden_state(block: str) -> None:
    """The chunked, perturbed forward gives the fused output, and its gradients equal those of
    an unrolled cell with the same weights (the total derivative dL/dh_t at every step)."""
    torch.manual_seed(0)
    model = build_model(rnn(block, 6), (2, 30), 3).eval()
    layer = model.blocks[0]
    x, y = torch.randn(4, 2, 30), torch.tensor([0, 1, 2, 0])
    fused = model(x)
    taps = time_units([("block", layer)])
    prof = time_profile(model, taps, x, y, n_units=1, samples=6)
    steps, got = prof["time_steps"][0], prof["grad_time"][0]
    assert steps == sample_steps(30, 6)
    layer.time_tap = TimeTap(6)
    with torch.enable_grad():
        assert torch.allclose(model(x), fused, atol=1e-6)
    layer.time_tap = None
    # the same network unrolled step by step with cells that share the layer's weights
    cell_cls = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[block]
    cell = cell_cls(2, 6)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        setattr(cell, name, getattr(layer.rnn, f"{name}_l0"))
    # zeros added to the state each step hands on: the gradient w.r.t. the state (h, c) as
    # the next step and the layers above receive it
    seq = x.transpose(1, 2)
    h, c = torch.zeros(4, 6), torch.zeros(4, 6)
    zeros = []
    for t in range(30):
        if block == "lstm":
            h, c = cell(seq[:, t], (h, c))
            z = (torch.zeros(4, 6, requires_grad=True), torch.zeros(4, 6, requires_grad=True))
            h, c = h + z[0], c + z[1]
        else:
            h = cell(seq[:, t], h)
            z = (torch.zeros(4, 6, requires_grad=True),)
            h = h + z[0]
        zeros.append(z)
    assert torch.allclose(model.head(h[:, :, None]), fused, atol=1e-5)
    loss = nn.functional.cross_entropy(model.head(h[:, :, None]), y, reduction="sum")
    grads = torch.autograd.grad(loss, [z for zs in zeros for z in zs], allow_unused=True)
    per = len(zeros[0])
    for step, g in zip(steps, got, strict=True):
        want = sum(float(gi.square().sum()) for gi in grads[step * per:(step + 1) * per]
                   if gi is not None)
        assert g == pytest.approx((want / 4) ** 0.5, rel=1e-4, abs=1e-12), step


def test_probe_records_gradient_through_time_without_changing_training() -> None:
    data = long_range(0, n=120, length=40)
    arch = rnn("rnn", 8)
    training = TrainConfig(batch_size=32, epochs=2)
    hook = ProbeHook()
    probed = cross_validate(arch, data, folds=2, seed=0, training=training, hooks=[hook])
    plain = cross_validate(arch, data, folds=2, seed=0, training=training)
    assert probed.folds["val_log_loss"].tolist() == plain.folds["val_log_loss"].tolist()
    trace = hook.traces[0]
    row = trace.epochs[-1]
    i = trace.blocks.index("block0.RNNBlock")
    assert row["time_steps"][i] == sample_steps(40, 8) and row["time_steps"][-1] is None
    profile = row["grad_time"][i]
    assert len(profile) == 8 and profile[-1] > 0
    assert profile[0] < 1e-3 * profile[-1]  # a tanh RNN: the first step gets next to nothing
    sig = time_signals(trace)
    assert sig["grad_time_log10"] is not None and sig["grad_time_log10"] < -3
    frame = time_frame(probed.traces)
    assert len(frame) == 2 * 2 * 8 and set(frame["block"]) == {"block0.RNNBlock"}
    # models without recurrent blocks record no time profile
    conv = cross_validate(ArchConfig.from_dict({"stages": [{"block": "residual", "depth": 1,
                                                            "width": 8}]}), data, folds=2,
                          seed=0, training=training, hooks=[ProbeHook()])
    assert "grad_time" not in conv.traces[0]["epochs"][-1]
    assert time_signals(Probe(build_model(arch, (1, 40), 2)).trace)["grad_time_log10"] is None


def test_recurrent_folds_fall_back_to_sequential_under_the_parallel_engine() -> None:
    data = long_range(0, n=80, length=20)
    training = TrainConfig(batch_size=32, epochs=1)
    on = cross_validate(rnn("lstm", 6), data, folds=2, seed=0, training=training, parallel="on")
    off = cross_validate(rnn("lstm", 6), data, folds=2, seed=0, training=training,
                         parallel="off")
    assert on.settings["parallel"] is False
    assert on.folds["val_log_loss"].tolist() == off.folds["val_log_loss"].tolist()


# --- search spaces and study files -------------------------------------------------------------

def test_sequence_space_file_loads_and_samples_every_family() -> None:
    space = load_space(ROOT / "search_spaces" / "sequence.yaml")
    blocks = {p.key: p for p in space.params}["block"].values()
    assert {"residual", "gru", "lstm", "transformer"} <= set(blocks)
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        cfg = space.suggest(study.ask())
        seen.add(cfg.stages[0].block)
        model = build_model(cfg, (1, 40), 10)
        assert model(torch.randn(2, 1, 40)).shape == (2, 10)
    assert {"gru", "transformer"} <= seen


def test_space_rejects_sequence_blocks_on_images_and_bad_heads(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("input_shape: [1, 8, 8]\nblock: {type: categorical, choices: [gru]}\n")
    with pytest.raises(ConfigError, match="runs on 1-D"):
        load_space(bad)
    bad.write_text("input_shape: [1, 40]\nblock: transformer\nwidth: 30\n"
                   "heads: {type: categorical, choices: [4, 8]}\n")
    with pytest.raises(ConfigError, match="'heads'.*divides the stage width 30"):
        load_space(bad)
    bad.write_text("input_shape: [1, 40]\nblock: rnn\nnonlinearity: tahn\n")
    with pytest.raises(UnknownNameError, match="Did you mean 'tanh'"):
        load_space(bad)


def test_sequence_study_file_loads() -> None:
    from nasdepth.study.study_file import load_study

    study = load_study(ROOT / "studies" / "mnist1d_sequence.yaml")
    assert study.data == "mnist1d" or "mnist1d" in json.dumps(study.data, default=str)


def test_flatten_readout_is_the_mnist1d_papers_gru() -> None:
    """Greydanus 2020's GRU: bidirectional, 6 units per direction, every one of the 40 steps'
    states flattened into one linear layer: 5,134 parameters, as the paper's notebook."""
    spec = {"stem": [], "skip": False, "head_pool": "flatten",
            "stages": [{"block": "gru", "depth": 1, "width": 12, "bidirectional": True,
                        "norm": "none"}]}
    model = build_model(ArchConfig.from_dict(spec), (1, 40), 10)
    assert count_parameters(model) == 5134
    assert model(torch.randn(3, 1, 40)).shape == (3, 10)
    # a strided conv stem shortens the sequence: the head is built for the length it gets
    strided = {**spec, "stem": [{"kind": "conv", "width": 8, "stride": 2}]}
    assert build_model(ArchConfig.from_dict(strided), (1, 40), 10)(
        torch.randn(2, 1, 40)).shape == (2, 10)
    with pytest.raises(ConfigError, match="head_pool"):
        build_model(ArchConfig.from_dict({**spec, "stages": [{"block": "plain", "depth": 1,
                                                               "width": 8}]}), (1, 8, 8), 10)


def test_mnist1d_positions_shuffled_and_flat() -> None:
    from nasdepth.data import load_data

    base = load_data({"source": "mnist1d", "n_samples": 200, "split": "all", "flat": True})
    mixed = load_data({"source": "mnist1d", "n_samples": 200, "split": "all", "flat": True,
                       "shuffle_positions": True})
    assert base.x.shape == mixed.x.shape == (200, 40)
    # one permutation for every sample: each column of the shuffled set is a column of the other
    cols = {tuple(c.tolist()) for c in base.x.T}
    assert all(tuple(c.tolist()) in cols for c in mixed.x.T)
    assert not torch.equal(base.x, mixed.x)
