"""``nasdepth arch NAME [--input 3x224x224] [--classes 1000] [--json] [--weights PATH]``: a
preset's config, parameters and FLOPs (and whether a local checkpoint loads into it)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from nasdepth.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from nasdepth.arch import ArchConfig


def register(p: argparse.ArgumentParser) -> None:
    from nasdepth.arch import PRESETS

    p.description = f"Presets: {', '.join(sorted(PRESETS))}."
    p.add_argument("name", help="preset name, e.g. resnet18")
    p.add_argument("--input", default="3x224x224",
                   help="sample shape: CxHxW, CxL (default 3x224x224); under 64 pixels a "
                        "preset takes its small-input variant")
    p.add_argument("--classes", type=int, default=1000, help="number of classes (default 1000)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.add_argument("--weights", default=None,
                   help="a local checkpoint (torchvision state_dict or nasdepth model file): "
                        "check that it loads into this preset")
    p.set_defaults(func=main)


def parse_arch(spec: str, input_shape: tuple[int, ...], num_classes: int) -> ArchConfig:
    """``--arch``: a preset name, an ``ArchConfig`` YAML/JSON file, or an inline mapping
    (JSON or YAML) -> ``ArchConfig`` (presets built for ``input_shape`` and ``num_classes``).
    Files and mappings go through the one bounded YAML reader: one line for any error."""
    from pathlib import Path

    from nasdepth.arch import PRESETS, ArchConfig, preset
    from nasdepth.yamlfile import parse_yaml, read_yaml

    if spec in PRESETS:
        return preset(spec, input_shape, num_classes)
    path = Path(spec)
    is_file = path.is_file()
    raw = read_yaml(path, "--arch file") if is_file else parse_yaml(spec, "The --arch mapping")
    if not isinstance(raw, dict):
        raise UnknownNameError("--arch", "arch", spec,
                               ["FILE.yaml", "FILE.json", "{...}", *PRESETS])
    return ArchConfig.from_dict(raw, source=str(path) if is_file else f"--arch {spec}")


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in text.lower().split("x"))
    except ValueError:
        shape = ()
    if not 1 <= len(shape) <= 3 or min(shape) < 1:
        raise ConfigError("the command line", "--input", text,
                          "sizes joined by 'x', e.g. 3x224x224, 1x8x8 or 3x128")
    return shape


def describe(name: str, shape: tuple[int, ...], classes: int) -> dict[str, Any]:
    from nasdepth.arch import config_complexity, preset

    cfg = preset(name, shape, classes)
    params, flops = config_complexity(cfg, shape, classes)
    return {"name": name, "input_shape": list(shape), "num_classes": classes,
            "config": cfg.to_dict(), "summary": cfg.summary(), "params": params,
            "flops": flops}


def main(args: argparse.Namespace) -> int:
    from nasdepth.arch import ArchConfig, build_model
    from nasdepth.arch.weights import read_weights

    shape = parse_shape(args.input)
    info = describe(args.name, shape, args.classes)
    cfg = ArchConfig.from_dict(info["config"])
    if args.weights:  # what loading it into the preset gives (a NasdepthError naming the key)
        model = build_model(cfg, shape, args.classes)
        info["weights"] = read_weights(model, args.weights).describe()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{args.name} for input {'x'.join(map(str, shape))}, {args.classes} classes")
    print(format_config(cfg))
    s = info["summary"]
    print(f"blocks {s['depth']}, weight layers {s['layers']}, parameters {info['params']:,}, "
          f"FLOPs {info['flops'] / 1e9:.3f} G (a multiply-add counts 2)")
    if args.weights:
        print(f"weights {args.weights}: {info['weights']}")
    return 0


def format_config(cfg: ArchConfig) -> str:
    """Stem, one line per stage (with the options that differ from the defaults), head."""
    stem = ", ".join(
        f"conv {s.width or cfg.stem_width or cfg.width} {_k(s.kernel_size)}/{s.stride}"
        if s.kind == "conv" else f"{s.kind} {_k(s.kernel_size)}/{s.stride}" for s in cfg.stem)
    lines = [f"stem:  {stem or 'none'}", "stage  block       depth  width  stride  options"]
    defaults = cfg.stages[0].__class__()
    for i, st in enumerate(cfg.stages):
        opts = {k: v for k, v in st.__dict__.items()
                if k not in ("block", "depth", "width", "stride") and v != getattr(defaults, k)}
        extra = " ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in opts.items())
        lines.append(f"{i:<6} {st.block:<11} {st.depth:<6} {st.width:<6} {st.stride:<7} "
                     f"{extra}".rstrip())
    head = f"{cfg.head_pool} pool to {cfg.head_pool_size}"
    head += "".join(f", fc {h}" for h in cfg.head_hidden)
    if cfg.head_dropout:
        head += f", dropout {cfg.head_dropout}"
    lines.append(f"head:  {head}, linear; skip={cfg.skip}, init={cfg.init}")
    return "\n".join(lines)


def _k(k: int | None) -> str:
    return "kxk" if k is None else f"{k}x{k}"
