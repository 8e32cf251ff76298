"""``nasdepth predict model.pt DATA --out predictions.csv``: per-class probabilities and the
predicted label of every row of DATA (any data spec ``load_data`` reads, or a ``.npy``/``.npz``
/``.csv`` without labels); labels in DATA are scored."""

from __future__ import annotations

import argparse
from typing import Any


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model file written by `nasdepth export`")
    p.add_argument("data", help="data spec: sklearn:digits, data/x.npy, table.csv, ..., or a "
                                "mapping with options in YAML: '{source: t.csv, target: y}'")
    p.add_argument("--out", default="predictions.csv", help="CSV to write")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    p.set_defaults(func=main)


def data_spec(text: str) -> str | dict[str, Any]:
    """A spec string as it is; ``{...}`` read as a YAML mapping (a study file's ``data:``)."""
    if not text.lstrip().startswith("{"):
        return text
    from nasdepth.errors import ConfigError
    from nasdepth.yamlfile import parse_yaml

    spec = parse_yaml(text, "The DATA mapping on the command line")
    if not isinstance(spec, dict):
        raise ConfigError("the command line", "DATA", text, "a YAML mapping such as "
                          "'{source: data/table.csv, target: label}'")
    return spec


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nasdepth.errors import NasdepthError

    if not Path(args.model).is_file():  # answered before the heavy imports
        raise NasdepthError(f"Model file {args.model} does not exist.")
    from nasdepth.outpath import check_output

    spec = data_spec(args.data)
    check_output(args.out, {"model file": args.model, "data file": spec},
                 what="predictions file")
    from nasdepth.export import load_model, predict, write_predictions
    from nasdepth.train import resolve_device

    model = load_model(args.model, device=resolve_device(args.device))
    pred = predict(model, spec)
    out = write_predictions(pred, args.out)
    print(f"{len(pred.frame)} predictions ({model.num_classes} classes) -> {out}")
    if pred.unknown:
        print(f"Labels not among the model's classes (rows not scored): "
              f"{', '.join(pred.unknown[:10])}")
    if pred.scores is not None:
        s = pred.scores
        print(f"Scored on {pred.n_scored} labelled rows: accuracy {s['accuracy']:.4f}, "
              f"balanced accuracy {s['balanced_accuracy']:.4f}, f1 macro {s['f1_macro']:.4f}, "
              f"log loss {s['log_loss']:.4f}")
    return 0
