"""``load_weights(model, path)``: weights from a local file (``torch.load(weights_only=True)``,
nothing downloaded) into a network ``build_model`` built.

A **torchvision** ``state_dict``'s keys are renamed by an explicit mapping per family
(:data:`FAMILIES`), built from the model's own blocks, so each of the model's tensors has
exactly one source key; a **nasdepth model file** (``nasdepth export``) or ``state_dict`` loads
into the same architecture as it is. Except for the classifier when the class count differs,
anything that does not fit (a missing or unexpected key, another shape, a checkpoint of another
family) is a :class:`~nasdepth.errors.NasdepthError` naming the key.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from nasdepth.arch.blocks.dense import DenseLayer, Transition
from nasdepth.arch.blocks.inception import InceptionBlock
from nasdepth.arch.blocks.mobile import DepthwiseSeparableBlock, MBConvBlock
from nasdepth.arch.blocks.resnet import BottleneckBlock, PlainBlock, ResidualBlock
from nasdepth.arch.blocks.squeeze import SqueezeExcite
from nasdepth.arch.build import Network
from nasdepth.errors import NasdepthError

log = logging.getLogger("nasdepth.arch")

#: the ``format`` entry of a nasdepth model file (written by ``nasdepth.export``)
MODEL_FORMAT = "nasdepth-model"

StateDict = dict[str, torch.Tensor]


@dataclass
class KeyMap:
    """Our key -> the checkpoint's key, plus the checkpoint's conv biases that are folded into
    the BatchNorm after them (``folds``: BN prefix in our model -> checkpoint bias key)."""

    keys: dict[str, str] = field(default_factory=dict)
    folds: dict[str, str] = field(default_factory=dict)

    def add(self, ours: str, theirs: str, module: nn.Module) -> None:
        """Every tensor of ``module`` (at prefix ``ours``) from prefix ``theirs``."""
        for name, _ in _tensors(module):
            self.keys[f"{ours}.{name}"] = f"{theirs}.{name}"

    def classifier(self, model: Network, theirs: str) -> None:
        """The head's last linear layer from prefix ``theirs``."""
        (name, fc), = _linears(model.head)[-1:]
        self.add(f"head.{name}", theirs, fc)


def _tensors(module: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """The tensors a module's ``state_dict`` holds for itself (not its children)."""
    yield from module.named_parameters(recurse=False)
    for name, buf in module.named_buffers(recurse=False):
        if name not in module._non_persistent_buffers_set:
            yield name, buf


def _conv_norm(km: KeyMap, ours: str, module: nn.Module, conv: str, norm: str | None) -> None:
    """One of our ``conv_norm_act`` Sequentials (conv at ``.0``, norm at ``.1``)."""
    seq = cast(nn.Sequential, module)
    km.add(f"{ours}.0", conv, seq[0])
    if norm is not None and len(seq) > 1 and isinstance(seq[1], nn.modules.batchnorm._NormBase):
        km.add(f"{ours}.1", norm, seq[1])


def _linears(head: nn.Module) -> list[tuple[str, nn.Linear]]:
    return [(n, m) for n, m in head.named_modules() if isinstance(m, nn.Linear)]


# --- ResNet, wide ResNet, ResNeXt -------------------------------------------------------------

def _resnet_map(model: Network) -> KeyMap:
    """torchvision ``conv1/bn1, layer{s}.{i}.conv{j}/bn{j}/downsample.{0,1}, fc``. A stage is
    a run of blocks with one output width (the widths of every torchvision ResNet differ per
    stage)."""
    km = KeyMap()
    stem = list(cast(nn.Sequential, model.stem))
    if not stem or not isinstance(stem[0], nn.Sequential):
        raise NasdepthError("This model has no ResNet stem (conv + norm first).")
    _conv_norm(km, "stem.0", stem[0], "conv1", "bn1")
    stage, index, width = 0, 0, None
    for n, block in enumerate(model.blocks):
        if block.out_channels != width:
            stage, index, width = stage + 1, 0, block.out_channels
        tv = f"layer{stage}.{index}"
        convs: tuple[tuple[str, int], ...]
        if isinstance(block, BottleneckBlock):
            convs = (("reduce", 1), ("conv", 2), ("expand", 3))
        else:
            convs = (("conv1", 1), ("conv2", 2))
        for ours, j in convs:
            _conv_norm(km, f"blocks.{n}.{ours}", getattr(block, ours), f"{tv}.conv{j}",
                       f"{tv}.bn{j}")
        if isinstance(block.shortcut, nn.Sequential):
            _conv_norm(km, f"blocks.{n}.shortcut", block.shortcut, f"{tv}.downsample.0",
                       f"{tv}.downsample.1")
        index += 1
    km.classifier(model, "fc")
    return km


def _is_resnet(model: Network) -> bool:
    return len(model.blocks) > 0 and all(
        isinstance(b, (ResidualBlock, BottleneckBlock)) for b in model.blocks)


# --- VGG ----------------------------------------------------------------------------------------

def _vgg_map(model: Network) -> KeyMap:
    """torchvision ``features.{i}`` (conv, [bn], relu per layer; one max pool between stages)
    and ``classifier.{0,3,6}``. VGG-BN's convolutions carry biases in torchvision but not here
    (a bias before BatchNorm is redundant): each is folded into the BN's running mean, which
    gives the same outputs in eval mode and the same training (the batch mean removes it)."""
    km = KeyMap()
    i = 0
    for n, block in enumerate(model.blocks):
        if not isinstance(block.pre, nn.Identity):
            i += 1  # the max pool before this stage
        body = cast(nn.Sequential, block.body)
        conv = cast(nn.Conv2d, body[0])
        has_bn = len(body) > 1 and isinstance(body[1], nn.modules.batchnorm._NormBase)
        km.add(f"blocks.{n}.body.0", f"features.{i}", conv)
        if has_bn:
            km.add(f"blocks.{n}.body.1", f"features.{i + 1}", body[1])
            if conv.bias is None:
                km.folds[f"blocks.{n}.body.1"] = f"features.{i}.bias"
        i += 3 if has_bn else 2
    linears = _linears(model.head)
    for k, (name, lin) in enumerate(linears):
        km.add(f"head.{name}", f"classifier.{3 * k}", lin)
    return km


def _is_vgg(model: Network) -> bool:
    return len(cast(nn.Sequential, model.stem)) == 0 and len(model.blocks) > 0 and all(
        type(b) is PlainBlock for b in model.blocks)


# --- DenseNet -----------------------------------------------------------------------------------

def _densenet_map(model: Network) -> KeyMap:
    """torchvision ``features.conv0/norm0``, ``features.denseblock{s}.denselayer{i}.norm1/conv1/
    norm2/conv2``, ``features.transition{s}.norm/conv``, ``features.norm5``, ``classifier``.
    Our dense layers are (norm, act, conv) Sequentials: norm at ``.0``, conv at ``.2``."""
    km = KeyMap()
    stem = cast(nn.Sequential, model.stem)
    _conv_norm(km, "stem.0", stem[0], "features.conv0", "features.norm0")
    stage, index = 1, 1
    for n, block in enumerate(model.blocks):
        body = cast(nn.Sequential, block.body)
        if isinstance(block, Transition):
            tv = f"features.transition{stage}"
            km.add(f"blocks.{n}.body.0", f"{tv}.norm", body[0])
            km.add(f"blocks.{n}.body.2", f"{tv}.conv", body[2])
            stage, index = stage + 1, 1
            continue
        tv = f"features.denseblock{stage}.denselayer{index}"
        for j, unit in enumerate(body):
            unit = cast(nn.Sequential, unit)
            km.add(f"blocks.{n}.body.{j}.0", f"{tv}.norm{j + 1}", unit[0])
            km.add(f"blocks.{n}.body.{j}.2", f"{tv}.conv{j + 1}", unit[2])
        index += 1
    head = cast(nn.Sequential, model.head)
    km.add("head.0", "features.norm5", head[0])
    km.classifier(model, "classifier")
    return km


def _is_densenet(model: Network) -> bool:
    return any(isinstance(b, DenseLayer) for b in model.blocks) and all(
        isinstance(b, (DenseLayer, Transition)) for b in model.blocks)


# --- MobileNetV2 --------------------------------------------------------------------------------

def _mobilenet_v2_map(model: Network) -> KeyMap:
    """torchvision ``features.0`` (stem), ``features.{n}.conv.{...}`` per inverted residual:
    the expansion and depthwise (conv, bn) pairs at ``conv.{j}.{0,1}``, the projection's conv
    and bn at ``conv.{j}`` and ``conv.{j+1}``; ``features.18`` (the 1x1 conv to 1280) and
    ``classifier.1``."""
    km = KeyMap()
    stem = cast(nn.Sequential, model.stem)
    _conv_norm(km, "stem.0", stem[0], "features.0.0", "features.0.1")
    for n, block in enumerate(model.blocks):
        body = cast(nn.Sequential, block.body)
        tv = f"features.{n + 1}"
        if isinstance(block, DepthwiseSeparableBlock):
            for j, unit in enumerate(body):
                unit = cast(nn.Sequential, unit)
                if j < len(body) - 1:
                    _conv_norm(km, f"blocks.{n}.body.{j}", unit, f"{tv}.conv.{j}.0",
                               f"{tv}.conv.{j}.1")
                else:  # the linear projection: conv and bn side by side in torchvision
                    _conv_norm(km, f"blocks.{n}.body.{j}", unit, f"{tv}.conv.{j}",
                               f"{tv}.conv.{j + 1}")
        else:
            _conv_norm(km, f"blocks.{n}.body", body, f"{tv}.0", f"{tv}.1")
    km.classifier(model, "classifier.1")
    return km


def _is_mobilenet_v2(model: Network) -> bool:
    blocks = list(model.blocks)
    return len(blocks) > 1 and all(type(b) is DepthwiseSeparableBlock for b in blocks[:-1]) \
        and type(blocks[-1]) is PlainBlock


# --- EfficientNet -------------------------------------------------------------------------------

def _efficientnet_map(model: Network) -> KeyMap:
    """torchvision ``features.0`` (stem), ``features.{s}.{i}.block.{j}`` per MBConv (stage
    ``s`` from 1, a new stage where the width changes): (conv, bn) pairs at ``.0``/``.1``, the
    squeeze-and-excitation at ``.fc1``/``.fc2``, index for index with our ``body``; the 1x1 conv
    to 4x the last width as the last ``features`` entry; ``classifier.1``."""
    km = KeyMap()
    _conv_norm(km, "stem.0", cast(nn.Sequential, model.stem)[0], "features.0.0", "features.0.1")
    stage, index, width = 0, 0, None
    for n, block in enumerate(model.blocks):
        body = cast(nn.Sequential, block.body)
        if not isinstance(block, MBConvBlock):  # the final 1x1 conv
            _conv_norm(km, f"blocks.{n}.body", body, f"features.{stage + 1}.0",
                       f"features.{stage + 1}.1")
            continue
        if block.out_channels != width:
            stage, index, width = stage + 1, 0, block.out_channels
        tv = f"features.{stage}.{index}.block"
        for j, unit in enumerate(body):
            if isinstance(unit, SqueezeExcite):
                km.add(f"blocks.{n}.body.{j}.fc1", f"{tv}.{j}.fc1", unit.fc1)
                km.add(f"blocks.{n}.body.{j}.fc2", f"{tv}.{j}.fc2", unit.fc2)
            else:
                _conv_norm(km, f"blocks.{n}.body.{j}", unit, f"{tv}.{j}.0", f"{tv}.{j}.1")
        index += 1
    km.classifier(model, "classifier.1")
    return km


def _is_efficientnet(model: Network) -> bool:
    blocks = list(model.blocks)
    return len(blocks) > 1 and all(isinstance(b, MBConvBlock) for b in blocks[:-1]) \
        and type(blocks[-1]) is PlainBlock


# --- GoogLeNet ----------------------------------------------------------------------------------

#: torchvision's names of the nine inception modules, in forward order
INCEPTIONS = ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")
#: torchvision's GoogLeNet normalizes with eps 0.001 (``BasicConv2d``), not PyTorch's 1e-5
GOOGLENET_BN_EPS = 1e-3


def _googlenet_map(model: Network) -> KeyMap:
    """torchvision ``conv1..3.conv/bn`` (the stem's convolutions, pools skipped),
    ``inception{3a..5b}.branch{1..4}[.j].conv/bn`` and ``fc``."""
    km = KeyMap()
    convs = [(i, m) for i, m in enumerate(cast(nn.Sequential, model.stem))
             if isinstance(m, nn.Sequential)]
    for k, (i, seq) in enumerate(convs):
        _conv_norm(km, f"stem.{i}", seq, f"conv{k + 1}.conv", f"conv{k + 1}.bn")
    if len(model.blocks) != len(INCEPTIONS):
        raise NasdepthError(f"This GoogLeNet has {len(model.blocks)} inception blocks; "
                            f"torchvision's has {len(INCEPTIONS)}.")
    for n, (module, name) in enumerate(zip(model.blocks, INCEPTIONS, strict=True)):
        block = cast(InceptionBlock, module)
        tv, ours = f"inception{name}", f"blocks.{n}"
        _conv_norm(km, f"{ours}.branch1", block.branch1, f"{tv}.branch1.conv",
                   f"{tv}.branch1.bn")
        for b in ("branch2", "branch3"):
            for j, unit in enumerate(cast(nn.Sequential, getattr(block, b))):
                _conv_norm(km, f"{ours}.{b}.{j}", unit, f"{tv}.{b}.{j}.conv", f"{tv}.{b}.{j}.bn")
        _conv_norm(km, f"{ours}.branch4.1", cast(nn.Sequential, block.branch4)[1],
                   f"{tv}.branch4.1.conv", f"{tv}.branch4.1.bn")
    km.classifier(model, "fc")
    return km


def _is_googlenet(model: Network) -> bool:
    return len(model.blocks) > 0 and all(isinstance(b, InceptionBlock) for b in model.blocks)


def _googlenet_eps(model: Network) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase):
            m.eps = GOOGLENET_BN_EPS


#: family -> (does the model belong to it, its key map: our key -> torchvision key)
FAMILIES: dict[str, tuple[Callable[[Network], bool], Callable[[Network], KeyMap]]] = {
    "resnet": (_is_resnet, _resnet_map),
    "vgg": (_is_vgg, _vgg_map),
    "densenet": (_is_densenet, _densenet_map),
    "mobilenet_v2": (_is_mobilenet_v2, _mobilenet_v2_map),
    "googlenet": (_is_googlenet, _googlenet_map),
    "efficientnet": (_is_efficientnet, _efficientnet_map),
}
#: a key that tells which torchvision family a checkpoint comes from (for error messages)
SIGNATURES = {
    "layer1.0.conv1.weight": "resnet", "classifier.0.weight": "vgg",
    "features.denseblock1.denselayer1.conv1.weight": "densenet",
    "features.1.conv.0.0.weight": "mobilenet_v2", "inception3a.branch1.conv.weight": "googlenet",
    "features.1.0.block.0.0.weight": "efficientnet",
}


def checkpoint_family(state: Mapping[str, torch.Tensor]) -> str | None:
    """The torchvision family a ``state_dict`` looks like, or None."""
    return next((fam for key, fam in SIGNATURES.items() if key in state), None)


def model_family(model: nn.Module) -> str | None:
    if not isinstance(model, Network):
        return None
    return next((fam for fam, (test, _) in FAMILIES.items() if test(model)), None)


# --- reading files ------------------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def _torch_load(path: str, stamp: tuple[int, int]) -> Any:
    """The file's contents, read once per version (``stamp``: mtime and size): a transfer
    study loads its checkpoint into every fold of every trial. Callers never modify what it
    returns (loading copies the tensors into the model)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def load_file(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` of a local file, with one message per problem
    (missing, unreadable), cached while the file is unchanged."""
    path = Path(path)
    if not path.is_file():
        raise NasdepthError(f"Checkpoint {path} does not exist (weights are read from local "
                            "files only).")
    st = path.stat()
    try:
        return _torch_load(str(path.resolve()), (st.st_mtime_ns, st.st_size))
    except Exception as exc:
        raise load_error(exc, f"The checkpoint {path}", f"{path} is not a checkpoint "
                         "torch.load(weights_only=True) can read") from None


def _torch_reason(text: str) -> list[str]:
    """torch's own reason lines, without its advice to load the file with weights_only=False
    (which would run whatever code the file holds)."""
    return [line.strip() for line in text.splitlines() if line.strip() and not any(
        s in line for s in ("weights_only", "PyTorch 2.6", "Weights only load failed",
                            "documentation", "safe_globals", "file an issue"))]


def refused_for_safety(exc: BaseException) -> str | None:
    """Why ``torch.load(weights_only=True)`` refused a file that holds more than tensors and
    plain data (a pickled function or class: code that would run on loading), in words that do
    not pass on torch's advice to load it with ``weights_only=False``; None for other
    failures (a damaged or foreign file)."""
    text = str(exc)
    if "Weights only load failed" not in text:
        return None
    found = re.search(r"(?:GLOBAL|global:?|class) ([A-Za-z_][\w.]*)", text)
    if found is None:
        return None
    return (f"holds code objects ({found.group(1)}) and was refused for safety: nasdepth "
            "reads tensors and plain data only and never runs code from a file")


def load_failure(exc: BaseException) -> str:
    """A failed ``torch.load``'s reason in one short line (torch's advice left out)."""
    reason = " ".join(_torch_reason(str(exc))) or type(exc).__name__
    return f"{type(exc).__name__}: {reason[:200]}"


def load_error(exc: BaseException, what: str, unreadable: str) -> NasdepthError:
    """The error for a file ``torch.load(weights_only=True)`` failed on: ``what`` (the file,
    named) refused for holding code objects, else ``unreadable`` with torch's reason."""
    refused = refused_for_safety(exc)
    if refused is not None:
        return NasdepthError(f"{what} {refused}.")
    return NasdepthError(f"{unreadable} ({load_failure(exc)}).")


def read_checkpoint(path: str | Path) -> tuple[StateDict, str]:
    """(state_dict, kind) of a local file: kind ``nasdepth-model`` or ``state_dict``."""
    path = Path(path)
    raw = load_file(path)
    if isinstance(raw, dict) and raw.get("format") == MODEL_FORMAT:
        states = raw.get("state_dicts")
        if not isinstance(states, list) or not states:
            raise NasdepthError(f"{path} is a damaged nasdepth model file (no state_dicts).")
        if len(states) > 1:
            log.info("%s holds an ensemble of %d fold models; loading the first", path,
                     len(states))
        return dict(states[0]), MODEL_FORMAT
    for wrapper in ("state_dict", "model"):  # common training-script checkpoints
        if isinstance(raw, dict) and isinstance(raw.get(wrapper), dict):
            raw = raw[wrapper]
            break
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise NasdepthError(f"{path} holds no state_dict (a mapping of names to tensors); got "
                            f"{type(raw).__name__}.")
    return {str(k): v for k, v in raw.items()}, "state_dict"


# --- loading ------------------------------------------------------------------------------------

def _classifier_keys(model: nn.Module) -> set[str]:
    head = getattr(model, "head", None)
    last = _linears(head)[-1:] if head is not None else []
    return {f"head.{name}.{p}" for name, lin in last for p, _ in _tensors(lin)}


def _fit(model: nn.Module, source: StateDict, mapping: Mapping[str, str], path: Path,
         what: str, folds: Mapping[str, str] | None = None) -> tuple[StateDict, list[str]]:
    """The model's new state: every key from its source key, shapes checked; the classifier
    keeps the model's own tensors when the class count differs."""
    own = model.state_dict()
    folds = folds or {}
    classifier = _classifier_keys(model)
    wanted = set(mapping.values()) | set(folds.values())
    unexpected = sorted(k for k in source if k not in wanted)
    family = checkpoint_family(source)
    if unexpected:
        hint = f" (it looks like a {family} checkpoint)" if family else ""
        raise NasdepthError(f"The checkpoint {path}{hint} has the key {unexpected[0]!r}, which "
                            f"{what} does not have ({len(unexpected)} unexpected keys).")
    new: StateDict = {}
    kept = []
    for ours, theirs in mapping.items():
        if theirs not in source:
            hint = f"; it looks like a {family} checkpoint" if family else ""
            raise NasdepthError(f"The checkpoint {path} lacks the key {theirs!r} that {what} "
                                f"needs (for {ours!r}){hint}.")
        t, mine = source[theirs], own[ours]
        if tuple(t.shape) != tuple(mine.shape):
            if ours in classifier:
                kept.append(ours)
                continue
            raise NasdepthError(f"The key {theirs!r} of {path} has shape {tuple(t.shape)}; "
                                f"{what} needs {tuple(mine.shape)} (for {ours!r}).")
        new[ours] = t.to(mine.dtype)
    for bn, bias in folds.items():
        mean_key = f"{bn}.running_mean"
        new[mean_key] = new[mean_key] - source[bias].to(new[mean_key].dtype)
    if kept:
        log.info("%s: the classifier (%s) keeps its fresh weights: the checkpoint's has "
                 "another class count", path, ", ".join(kept))
        for key in kept:
            new[key] = own[key]
    return new, kept


@dataclass
class LoadedWeights:
    """What :func:`read_weights` found: the model's new ``state`` and where it came from
    (``kind``: ``nasdepth-model``, ``state_dict`` or ``torchvision``; ``family`` for a
    torchvision checkpoint), and the classifier keys that kept their fresh tensors."""

    state: StateDict
    kind: str
    family: str | None = None
    kept: list[str] = field(default_factory=list)

    def describe(self) -> str:
        what = {"nasdepth-model": "a nasdepth model file", "state_dict": "a nasdepth state_dict",
                "torchvision": f"a torchvision {self.family} state_dict"}[self.kind]
        kept = (f"; the classifier keeps its fresh weights ({', '.join(self.kept)}: another "
                "class count)" if self.kept else "")
        return f"{len(self.state)} tensors from {what}{kept}"


def read_weights(model: nn.Module, path: str | Path) -> LoadedWeights:
    """The state ``model`` gets from ``path`` (checked, not yet loaded): see
    :func:`load_weights`."""
    path = Path(path)
    source, kind = read_checkpoint(path)
    own = model.state_dict()
    family = None
    if kind == MODEL_FORMAT or set(source) & set(own):
        # nasdepth keys: the same architecture, one to one
        what = "this model" if kind != MODEL_FORMAT else "this model (the exported model's " \
            "architecture must be the same)"
        new, kept = _fit(model, source, {k: k for k in own}, path, what)
    else:
        family = model_family(model)
        if family is None:
            found = checkpoint_family(source)
            raise NasdepthError(
                f"The checkpoint {path} is a torchvision-style state_dict"
                f"{f' of the {found} family' if found else ''}, and this model is not a preset "
                f"of a family whose keys nasdepth maps ({', '.join(FAMILIES)}); build it with "
                "build_model(preset(NAME, ...), ...).")
        km = FAMILIES[family][1](model)  # type: ignore[arg-type]
        new, kept = _fit(model, source, km.keys, path, f"this {family} preset", km.folds)
        kind = "torchvision"
    missing = [k for k in own if k not in new]
    if missing:  # a mapping bug, not the user's: every tensor must come from somewhere
        raise NasdepthError(f"Loading {path} leaves {missing[0]!r} of the model unset.")
    return LoadedWeights(state=new, kind=kind, family=family, kept=kept)


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the weights in ``path`` into ``model`` (built by ``build_model``) and return it.

    A torchvision ``state_dict`` needs the model to be the matching preset
    (``build_model(preset("resnet18", ...), ...)`` for ``torchvision.models.resnet18``);
    families (:data:`FAMILIES`): ResNet (resnet18..152, wide_resnet50_2, resnext50_32x4d,
    resnext101_32x8d), VGG (vgg11..19, with or without ``_bn``), DenseNet (121, 161, 169,
    201), MobileNetV2, EfficientNet (b0..b3) and GoogLeNet (without its auxiliary
    classifiers). A nasdepth model
    file or state_dict loads into the same architecture. The classifier keeps the model's
    fresh weights when the class count differs.
    """
    loaded = read_weights(model, path)
    model.load_state_dict(loaded.state, strict=True)
    if loaded.family == "googlenet":  # part of reproducing torchvision's function
        _googlenet_eps(model)  # type: ignore[arg-type]
    return model


def torchvision_key_map(model: nn.Module) -> dict[str, str]:
    """Our key -> torchvision key for a preset model (documentation and tests)."""
    family = model_family(model)
    if family is None:
        raise NasdepthError("This model is not a preset of a mapped family "
                            f"({', '.join(FAMILIES)}).")
    return dict(FAMILIES[family][1](model).keys)  # type: ignore[arg-type]

