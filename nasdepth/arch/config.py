"""``ArchConfig``: the whole description of an architecture (timm ``ByoBlockCfg`` style).

A network is a stem (a few conv/pool layers), a sequence of stages (each a run of identical
blocks) and a head (pooling, optional hidden FC layers, linear classifier), plus optional
auxiliary classifiers after chosen stages. Everything is a frozen dataclass with
``to_dict``/``from_dict`` so that a config can be stored as JSON in an Optuna trial and rebuilt
bit for bit. Block options are ``StageConfig`` fields, so a search space can sample any of them
by name; a block ignores the options that do not concern it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from nasdepth.errors import ConfigError, UnknownNameError

T = TypeVar("T")

# Name lists live here, apart from the torch modules that implement them, so that a search
# space is checked without importing torch.
NORMS = ("batch", "group", "layer", "none")
#: activations (``nasdepth.arch.layers.ACTIVATIONS`` maps each to its ``nn`` module)
ACTIVATION_NAMES = ("relu", "gelu", "silu", "tanh", "sigmoid", "relu6")
#: weight initializations (``nasdepth.arch.build.initialize``)
INITS = ("default", "kaiming", "xavier", "orthogonal")
DOWNSAMPLES = ("stride", "maxpool", "avgpool")
STEM_KINDS = ("conv", "maxpool", "avgpool")
HEAD_POOLS = ("avg", "max", "last", "attention", "flatten")
#: readouts that only have a meaning on sequences (1-D inputs): the last step, attention
#: pooling, every step's state flattened into the head (the MNIST-1D paper's GRU readout)
SEQUENCE_POOLS = ("last", "attention", "flatten")
#: auxiliary classifiers (``ArchConfig.aux_head``)
AUX_HEADS = ("linear", "inception")
#: the recurrence nonlinearity of ``rnn`` blocks (``nn.RNN``'s own two)
NONLINEARITIES = ("tanh", "relu")
#: positional encodings a ``transformer`` stage adds to its input
POSITIONALS = ("sinusoidal", "none")


@dataclass(frozen=True)
class StageConfig:
    """One stage: ``depth`` blocks of type ``block`` producing ``width`` channels (features).

    Options read by some blocks only:

    - ``bottleneck_ratio``: inner width / ``width`` of ``bottleneck`` and ``grouped`` blocks
    - ``cardinality``: groups of the ``grouped`` (ResNeXt) kxk convolution; must divide
      ``width`` (the inner width is rounded down to a multiple of it)
    - ``growth_rate``: channels each ``dense`` layer adds (None: ``width``)
    - ``expansion``: ``dense``: bottleneck width = expansion * growth (None: 4, 0: no 1x1
      bottleneck); ``dwsep``: inverted-residual hidden width = expansion * input width
      (None or 1: no expansion layer, MobileNetV2's t); ``mbconv``: the same (None: 6)
    - ``compression``: channel factor of the transition layer that opens a later ``dense`` stage
    - ``branches``: ``inception`` branch widths (1x1, 3x3 reduce, 3x3, wide reduce, wide,
      pool projection); empty: derived from ``width``
    - ``wide_kernels``: kernel sizes stacked in the inception wide branch: (5,) as in the paper,
      (3, 3) as in Inception-v2, (3,) as torchvision's GoogLeNet
    - ``se_ratio``: squeeze-and-excitation (Hu et al. 2018) of ``residual``, ``bottleneck``,
      ``grouped``, ``dwsep`` and ``mbconv`` blocks: a gate per channel from the pooled map,
      through ``se_ratio`` x the block's input width (``mbconv``/``dwsep``, EfficientNet's
      convention) or output width (the ResNet family, SENet's 1/r); 0: off; None: the
      block's default (``mbconv``: 0.25, the others: off)
    - ``drop_path``: stochastic depth (Huang et al. 2016) of blocks with a shortcut: in
      training, each sample's residual branch is dropped with this probability (and the
      kept ones scaled up); nothing is dropped where the block has no shortcut
    - ``downsample``: how the stage's ``stride`` is applied: ``stride`` (strided first conv),
      ``maxpool``/``avgpool`` (a pooling layer before the first block, VGG/GoogLeNet style)

    Sequence blocks (``rnn``, ``lstm``, ``gru``, ``transformer``; 1-D inputs only):

    - ``bidirectional``: recurrent blocks read the sequence both ways, each direction with
      ``width // 2`` hidden units (``width`` must be even)
    - ``nonlinearity``: ``tanh`` or ``relu``, the recurrence of ``rnn`` blocks
    - ``heads``: attention heads of ``transformer`` blocks; must divide ``width`` (d_model)
    - ``expansion``: ``transformer``: feed-forward width = expansion * width (None: 4)
    - ``norm_first``: ``transformer``: pre-norm (True) or post-norm (False, the original)
    - ``positional``: ``transformer``: the encoding a transformer stage adds to its input
      (``sinusoidal`` or ``none``)
    - ``gate_bias``: the initial bias of the gate that keeps the state: an LSTM's forget gate
      (None: 1, Jozefowicz et al. 2015), a GRU's update gate (None: PyTorch's initialization);
      3 keeps about 95% of the state per step, memory over ~100 steps from the start
    """

    block: str = "plain"
    depth: int = 1
    width: int = 32
    stride: int = 1
    kernel_size: int = 3
    norm: str = "batch"
    activation: str = "relu"
    dropout: float = 0.0
    bottleneck_ratio: float = 0.25
    cardinality: int = 4
    growth_rate: int | None = None
    expansion: float | None = None
    compression: float = 0.5
    branches: tuple[int, ...] = ()
    wide_kernels: tuple[int, ...] = (5,)
    downsample: str = "stride"
    bidirectional: bool = False
    nonlinearity: str = "tanh"
    heads: int = 4
    norm_first: bool = True
    positional: str = "sinusoidal"
    gate_bias: float | None = None
    se_ratio: float | None = None
    drop_path: float = 0.0

    def __post_init__(self) -> None:
        # Lists from JSON/YAML become tuples so that configs compare equal after a round trip.
        for name in ("branches", "wide_kernels"):
            object.__setattr__(self, name, tuple(getattr(self, name)))


@dataclass(frozen=True)
class StemLayer:
    """One stem layer: ``conv`` (conv-norm-activation of the first stage's norm and activation)
    or a ``maxpool``/``avgpool`` of ``kernel_size`` and ``stride`` ('same' padding).

    ``width`` None: ``ArchConfig.stem_width``, else the first stage's width; ``kernel_size``
    None: the first stage's kernel size.
    """

    kind: str = "conv"
    width: int | None = None
    kernel_size: int | None = None
    stride: int = 1


@dataclass(frozen=True)
class ArchConfig:
    """A network: stem -> stages -> pooling -> (hidden FC layers) -> linear classifier.

    ``skip=False`` removes every shortcut, so a residual network and its plain twin differ in
    this one switch. ``stem=()`` means no stem (VGG: the first stage sees the input).
    ``head_pool_size`` > 1 keeps a small grid before the classifier (VGG's 7x7).
    ``head_pool`` is the readout: ``avg`` (mean over positions) or ``max``, and on sequences
    also ``last`` (the last step; both directions' final states after a bidirectional block)
    or ``attention`` (a learned softmax weighting of the steps).
    ``aux_heads`` are stage indices after which an auxiliary classifier (pooling + linear)
    is attached; in training mode the network stores their logits in ``aux_logits`` and the
    trainer adds ``aux_weight`` times their loss. ``aux_head``: ``linear`` (pooling + linear)
    or ``inception`` (torchvision's GoogLeNet ``InceptionAux``: 4x4 average pool, 1x1 conv to
    128, 1024 hidden units, dropout 0.7; 2-D inputs).
    """

    stages: tuple[StageConfig, ...] = (StageConfig(),)
    stem_width: int | None = None  # None: the first stage's width
    skip: bool = True
    init: str = "default"
    head_hidden: tuple[int, ...] = field(default=())
    stem: tuple[StemLayer, ...] = (StemLayer(),)
    head_pool: str = "avg"
    head_pool_size: int = 1
    head_dropout: float = 0.0
    aux_heads: tuple[int, ...] = ()
    aux_weight: float = 0.3
    aux_head: str = "linear"

    def __post_init__(self) -> None:
        for name in ("stages", "stem", "head_hidden", "aux_heads"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def depth(self) -> int:
        """Total number of blocks over all stages."""
        return sum(s.depth for s in self.stages)

    @property
    def width(self) -> int:
        """Width of the first stage (the base width a search space samples)."""
        return self.stages[0].width

    @property
    def blocks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.block for s in self.stages))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stages"] = [_listify(asdict(s)) for s in self.stages]
        d["stem"] = [asdict(s) for s in self.stem]
        if d.get("aux_head") == "linear":  # the default: configs written before it match
            del d["aux_head"]
        return _listify(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "architecture") -> ArchConfig:
        d = dict(checked_keys(cls, d, source))
        stages = d.get("stages", [{}])
        if not isinstance(stages, (list, tuple)) or not stages:
            raise ConfigError(source, "stages", stages, "a non-empty list of stage mappings")
        d["stages"] = _parts(StageConfig, stages, f"{source} stage")
        if "stem" in d:
            if not isinstance(d["stem"], (list, tuple)):
                raise ConfigError(source, "stem", d["stem"], "a list of stem layer mappings")
            d["stem"] = _parts(StemLayer, d["stem"], f"{source} stem")
        return cls(**d)

    def summary(self) -> dict[str, Any]:
        """Flat description for tables: depth, width, block, skip, layers, ..."""
        from nasdepth.arch.blocks import count_layers  # blocks import this module

        first = self.stages[0]
        return {
            "depth": self.depth,
            "width": self.width,
            "block": "+".join(self.blocks),
            "skip": self.skip,
            "stages": len(self.stages),
            "layers": count_layers(self),
            "norm": first.norm,
            "activation": first.activation,
            "dropout": first.dropout,
            "init": self.init,
        }


def _listify(d: dict[str, Any]) -> dict[str, Any]:
    """Tuples become lists: the JSON form."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _parts(cls: type[T], items: list[Any] | tuple[Any, ...], source: str) -> tuple[T, ...]:
    """``items`` (``cls`` instances or mappings of its fields) as ``cls`` instances; the error
    for item ``i`` names ``source i``."""
    return tuple(s if isinstance(s, cls) else cls(**checked_keys(cls, s, f"{source} {i}"))
                 for i, s in enumerate(items))


def checked_keys(cls: type, d: Any, source: str, name: str | None = None) -> dict[str, Any]:
    """``d``, a mapping whose keys are all fields of the dataclass ``cls`` (``name``: what the
    error calls a ``d`` that is no mapping; default the class name)."""
    if not isinstance(d, dict):
        raise ConfigError(source, name or cls.__name__, d, "a mapping")
    valid = {f.name for f in fields(cls)}
    for key in d:
        if key not in valid:
            raise UnknownNameError(source, "key", key, valid)
    return d
