"""``nasdepth spaces check FILE...``: validate search spaces, print their parameters and size.

The first bad file ends the command with one line naming the file and the key, exit status 2.
The check runs the blocks' own rules without building them (no torch import: a fraction of a
second); ``--samples N`` also samples N architectures and builds them on the meta device, which
catches what only building tells (a stage too small for the input after its strides).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from nasdepth.errors import ConfigError, NasdepthError

if TYPE_CHECKING:
    from nasdepth.space import SearchSpace

SAMPLES = 0


def register(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", required=True)
    check = actions.add_parser(
        "check", help="validate search spaces; print their parameters and size")
    check.add_argument("files", nargs="+", help="search-space YAML files")
    check.add_argument("--samples", type=int, default=SAMPLES,
                       help="also sample and build this many architectures where the space "
                            f"fixes input_shape (imports torch; default {SAMPLES}: none)")
    check.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    for name in args.files:  # every file checked for existence before the heavy imports
        if not Path(name).is_file():
            raise ConfigError("nasdepth spaces check", "FILE", name,
                              "an existing search-space file")
    from nasdepth.space import load_space

    for i, name in enumerate(args.files):
        lines = report(load_space(name), samples=args.samples)
        print(("\n" if i else "") + "\n".join(lines))
    return 0


def report(space: SearchSpace, *, samples: int = SAMPLES) -> list[str]:
    """The lines ``spaces check`` prints for one (valid) space."""
    lines = [f"{space.source}: {space.name}" + (f": {space.description}"
                                                 if space.description else "")]
    rows = space.describe()
    header = {"parameter": "parameter", "type": "type", "count": "n", "values": "values",
              "when": "when"}
    lines += aligned([[str(row[c]) for c in header] for row in [header, *rows]], "  ")
    if space.input_shape is not None:
        lines.append(f"  input_shape: {list(space.input_shape)}, num_classes: "
                     f"{space.num_classes}")
    if space.budget is not None:
        b = space.budget
        parts = [f"{k} {v:,}" for k, v in (("max_params", b.max_params),
                                            ("max_flops", b.max_flops)) if v is not None]
        lines.append(f"  budget: {', '.join(parts)} (widths scaled to fit; multiples of "
                     f"{b.width_divisor})")
    if space.scaling is not None:
        lines += scaling_lines(space)
    recipe = [p for p in space.recipe_params if p.kind != "fixed"]
    arch_space = space.architecture_only() if space.recipe_params else space
    size, bound = arch_space.size(), arch_space.bound()
    if size is not None:
        lines.append(f"  {size:,} distinct architectures" + (
            " (x input side)" if space.scaling is not None else ""))
    elif bound is None:
        lines.append("  infinitely many architectures (continuous parameters)")
    else:
        lines.append(f"  up to {bound:,} combinations (too many to list)")
    if space.recipe_params:
        names = ", ".join(p.key for p in recipe) or "none (all fixed)"
        total = space.size()
        count = "continuous: infinitely many" if total is None and space.bound() is None \
            else f"{total:,}" if total is not None else "too many to list"
        lines.append(f"  training recipe searched: {names}; candidates (architecture x "
                     f"recipe): {count}")
    if space.input_shape is not None and samples > 0:
        lines.append("  " + _sample_line(space, samples))
    return lines


def scaling_lines(space: SearchSpace) -> list[str]:
    """What a ``scaling:`` section does: every rule's coefficients and, per φ, the resulting
    depth, stage widths and input resolution of the base network (its first combination
    where the rest of the space is searched too)."""
    from nasdepth.space.scaling import explain

    sc = space.scaling
    assert sc is not None  # the caller checked
    combos = space.grid(limit=10**9) if space.bound() is not None else None
    first = (combos or [{}])[0]
    base = space.to_arch(first, scale=False, apply_budget=False)
    searched = any(p.kind != "fixed" for p in space.params if p not in sc.params)
    lines = [f"  compound scaling: base input side {sc.resolution}, FLOPs x {sc.target:g} per "
             f"unit of phi (alpha * beta^2 * gamma^2 within {sc.tolerance:.0%})"
             + ("; phi matched to the FLOPs target per candidate" if sc.match_flops else ""),
             f"    base network: depth {base.depth}, widths "
             f"{[s.width for s in base.stages]}" + (" (the first combination of the other "
                                                   "searched parameters)" if searched else "")]
    rows = explain(sc, base, space.input_shape, space.num_classes)
    matched = any("matched_phi" in r for r in rows)
    head = ["rule", "alpha", "beta", "gamma", "phi", *(["matched"] if matched else []),
            "depth", "widths", "resolution", "FLOPs x"]
    table = [head]
    for r in rows:
        flops = (f"{r['flops_reached']:.2f} (target {r['flops_target']:g})"
                 if "flops_reached" in r else f"{r['flops_target']:g}")
        table.append([r["rule"], f"{r['alpha']:g}", f"{r['beta']:g}", f"{r['gamma']:g}",
                      f"{r['phi']:g}", *([f"{r['matched_phi']:.3f}"] if matched else []),
                      str(r["depth"]), ",".join(map(str, r["widths"])), str(r["resolution"]),
                      flops])
    return lines + aligned(table, "    ")


def aligned(table: list[list[str]], indent: str) -> list[str]:
    """The rows of ``table`` as lines of left-aligned columns."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in table]


def _sample_line(space: SearchSpace, samples: int) -> str:
    """Sample and build a few architectures (meta device: shapes only) to catch what only
    building can tell, such as a block that cannot run at the space's input size."""
    import optuna

    from nasdepth.arch import config_complexity

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    counts = []
    shape = space.input_shape or ()
    for _ in range(samples):
        trial = study.ask()
        arch = space.suggest(trial)
        try:
            params, _flops = config_complexity(arch, shape, space.num_classes,
                                        flops=False)
        except (ValueError, RuntimeError) as exc:
            why = " ".join(str(exc).split())
            raise NasdepthError(f"{space.source}: the sampled architecture {trial.params} does "
                                f"not build for input_shape {list(shape)}: {why}"
                                ) from None
        study.tell(trial, 0.0)
        counts.append(params)
    return (f"{samples} sampled architectures build: {min(counts):,} to {max(counts):,} "
            "parameters")
