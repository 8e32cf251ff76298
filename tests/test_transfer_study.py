"""The two-step transfer workflow: pre-train with a nasdepth study and export it, then a
target study whose ``transfer.weights`` is that file searches the mode, blocks and rate
factor; its records and report tables say how each mode did."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nasdepth.errors import ConfigError, NasdepthError
from nasdepth.export import export_model
from nasdepth.study import run_study
from nasdepth.study.record import read_record
from nasdepth.study.study_file import load_study

SOURCE_SPACE = {"stages": 2, "depth": 4, "width": 8, "block": "residual"}  # 4 blocks
TARGET_DATA = {"source": "sklearn:digits", "classes": [5, 6, 7, 8, 9], "limit": 150}


def _write(path: Path, content: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def _target(folder: Path, transfer: dict, **extra: object) -> Path:
    return _write(folder / "studies" / "target.yaml", {
        "name": "target", "data": TARGET_DATA, "space": {"lr": 0.03},
        "cv": {"folds": 3}, "training": {"epochs": 8, "batch_size": 32},
        "budget": {"trials": 4}, "sampler": "bruteforce", "seed": 0,
        "transfer": transfer, **extra})


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("transfer")
    _write(folder / "search_spaces" / "source.yaml", SOURCE_SPACE)
    path = _write(folder / "studies" / "source.yaml", {
        "name": "source", "data": {"source": "sklearn:digits", "classes": [0, 1, 2, 3, 4]},
        "space": "search_spaces/source.yaml", "cv": {"folds": 2},
        "training": {"epochs": 3, "batch_size": 64, "lr": 0.01}, "budget": {"trials": 1},
        "seed": 0, "diagnosis": {"baseline": False}})
    run_study(path, progress=False, probes=False)
    export_model(path, "best", folder / "models" / "source.pt")
    return folder / "models" / "source.pt"


def test_target_study_searches_the_modes(exported: Path) -> None:
    folder = exported.parent.parent
    path = _target(folder, {
        "weights": "models/source.pt",
        "mode": {"type": "categorical", "choices": ["scratch", "feature_extraction",
                                                    "fine_tune"]},
        "trainable_blocks": {"type": "categorical", "choices": [1, 3]},
        "body_lr_factor": 0.3, "unfreeze_every": 4, "learning_curve": [0.5]})
    cfg = load_study(path)
    assert cfg.transfer is not None and cfg.transfer.arch is not None
    study = run_study(path, progress=False, probes=False)
    records = [read_record(t) for t in study.get_trials()]
    assert all(r.state == "complete" for r in records)
    seen = {(r.transfer["mode"], r.transfer["trainable_blocks"]) for r in records}
    assert seen == {("scratch", None), ("feature_extraction", None), ("fine_tune", 1),
                    ("fine_tune", 3)}
    for r in records:
        assert r.arch == cfg.transfer.arch.to_dict()  # the model file's architecture
        assert {row["fraction"] for row in r.transfer["learning_curve"]} == {0.5}
        assert r.params["transfer.mode"] == r.transfer["mode"]
        if r.transfer["mode"] == "fine_tune":
            assert r.transfer["body_lr_factor"] == 0.3
            # gradual unfreezing: one more block before epoch 4 (of 8)
            assert r.transfer["unfreeze_every"] == 4 and len(r.transfer["unfrozen"]) == 1
            assert len(r.transfer["frozen"]) == 1 + 4 - r.transfer["trainable_blocks"]

    from nasdepth.report.tables import collect
    from nasdepth.report.transfer import transfer_tables

    tabs = transfer_tables(collect(study))
    assert set(tabs.by_mode["mode"]) == {"scratch", "feature_extraction", "fine_tune"}
    assert tabs.by_mode.set_index("mode").loc["fine_tune", "trials"] == 2
    modes = tabs.by_mode.set_index("mode")
    assert modes.loc["feature_extraction", "trainable_params"] < \
        modes.loc["scratch", "trainable_params"]
    assert set(tabs.by_blocks["trainable_blocks"]) == {"0 (feature extraction)", "1", "3"}
    curve = tabs.learning_curve
    assert set(curve["fraction"]) == {0.5, 1.0}
    assert set(curve["mode"]) == {"scratch", "feature_extraction", "fine_tune"}
    half = curve[curve["fraction"] == 0.5]
    assert (half["n_train"] < curve[curve["fraction"] == 1.0]["n_train"].max()).all()
    # one architecture (the model file's): the report says so instead of comparing depths
    from nasdepth.report import write_report

    write_report(study, folder / "report")
    md = (folder / "report" / "report.md").read_text()
    assert "\n## Architecture\n" in md and "\n## Transfer\n" in md
    assert "\n## Depth\n" not in md and "\n## Width\n" not in md


@pytest.mark.parametrize(("transfer", "match"), [
    ({"weights": "models/none.pt"}, "'transfer.weights' .* must be an existing local file"),
    ({"weights": "models/source.pt", "mode": "finetune"}, "Did you mean 'fine_tune'"),
    ({"weights": "models/source.pt", "mode": "feature_extraction", "trainable_blocks": 2},
     "trainable_blocks.*only the fine_tune mode"),
    ({"weights": "models/source.pt", "trainable_blocks": {"type": "int", "low": 1,
                                                          "high": 9}},
     "trainable_blocks.*<= 4 \\(the checkpoint's blocks\\).*Got 9"),
    ({"weights": "models/source.pt", "body_lr_factor": 0}, "body_lr_factor.*\\(0, 10\\]"),
    ({"weights": "models/source.pt", "unfreeze": 1}, "Did you mean 'unfreeze_every'"),
    ({"weights": "models/source.pt", "unfreeze_every": 2}, "without a trainable_blocks"),
    ({"weights": "models/source.pt", "trainable_blocks": 1, "unfreeze_every": -1},
     "unfreeze_every.*an int >= 0"),
    ({"weights": "models/source.pt", "learning_curve": [1.5]}, "learning_curve"),
    ({"weights": "models/source.pt", "adapt": {"size": "crop"}}, "Did you mean 'keep'|resize"),
])
def test_bad_transfer_sections_are_precise_errors(exported: Path, transfer: dict,
                                                  match: str) -> None:
    path = _target(exported.parent.parent, transfer)
    with pytest.raises(ConfigError, match=match) as info:
        load_study(path)
    assert str(path) in str(info.value)


def test_model_file_fixes_the_architecture(exported: Path) -> None:
    folder = exported.parent.parent
    path = _target(folder, {"weights": "models/source.pt"}, space={"width": 16})
    with pytest.raises(ConfigError, match="training-recipe keys only"):
        load_study(path)


def test_wrong_checkpoint_file_is_clear(exported: Path) -> None:
    folder = exported.parent.parent
    (folder / "models" / "junk.pt").write_text("junk")
    with pytest.raises(NasdepthError, match="junk.pt is not a checkpoint"):
        load_study(_target(folder, {"weights": "models/junk.pt"}))


def test_transfer_trial_exports_and_diagnoses(exported: Path, capsys) -> None:
    """A fine-tuned trial refits from its checkpoint (frozen parts saved as loaded) and
    ``diagnose --study`` reruns it as it ran."""
    import torch

    from nasdepth.arch.weights import read_checkpoint
    from nasdepth.cli import main as cli
    from nasdepth.export import load_model

    folder = exported.parent.parent
    path = _target(folder, {"weights": "models/source.pt", "mode": "fine_tune",
                            "trainable_blocks": 1, "body_lr_factor": 0.3},
                   budget={"trials": 1}, name="target_ft",
                   training={"epochs": 3, "batch_size": 32})
    study = run_study(path, progress=False, probes=False)
    result = export_model(path, "best", folder / "models" / "target.pt")
    assert result.metadata["refit"]["transfer"]["frozen"] == [
        "stem", "block0.ResidualBlock", "block1.ResidualBlock", "block2.ResidualBlock"]
    source_state, _ = read_checkpoint(exported)
    model = load_model(folder / "models" / "target.pt")
    state = model.members[0].state_dict()
    assert torch.equal(state["blocks.0.conv1.0.weight"], source_state["blocks.0.conv1.0.weight"])
    assert torch.equal(state["blocks.1.conv2.1.running_mean"],
                       source_state["blocks.1.conv2.1.running_mean"])
    assert not torch.equal(state["blocks.3.conv1.0.weight"],
                           source_state["blocks.3.conv1.0.weight"])
    assert model.class_names == ["5", "6", "7", "8", "9"]
    with pytest.raises(ConfigError, match="--ensemble"):
        export_model(path, "best", folder / "models" / "e.pt", ensemble=True)
    n = study.best_trial.number
    assert cli(["diagnose", "--study", str(path), "--trial", str(n), "--controls", "none"]) == 0
    assert cli(["diagnose", "--study", str(path), "--trial", str(n), "--controls",
                "shuffled"]) == 2
    assert "shallow or none for a transfer trial" in capsys.readouterr().err


def test_cli_refuses_a_bad_transfer_section(exported: Path, capsys) -> None:
    from nasdepth.cli import main as cli

    path = _target(exported.parent.parent, {"weights": "models/source.pt", "mode": "finetune"})
    assert cli(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'fine_tune'" in err and "Traceback" not in err


def test_a_torchvision_checkpoint_in_a_study_takes_its_preset(tmp_path: Path) -> None:
    """``transfer: {weights: resnet18.pth, preset: resnet18}``: a torchvision state_dict
    (random weights, saved by torchvision itself) is every candidate's body, in the preset's
    torchvision layout, and the modes are searched over it like a nasdepth model file's."""
    import torch
    import torchvision

    from nasdepth.arch import preset

    torch.manual_seed(0)
    weights = tmp_path / "models" / "resnet18.pth"
    weights.parent.mkdir()
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    data = {"source": "synthetic:classification", "n_samples": 48, "n_classes": 2,
            "image_shape": [3, 16, 16], "class_sep": 2.0}
    path = _write(tmp_path / "studies" / "tv.yaml", {
        "name": "tv", "data": data, "space": {}, "cv": {"folds": 2},
        "training": {"epochs": 1, "batch_size": 16, "lr": 0.01}, "budget": {"trials": 2},
        "sampler": "bruteforce", "seed": 0, "diagnosis": {"baseline": False},
        "transfer": {"weights": "models/resnet18.pth", "preset": "resnet18",
                     "mode": {"type": "categorical",
                              "choices": ["feature_extraction", "fine_tune"]},
                     "trainable_blocks": 1}})
    cfg = load_study(path)
    assert cfg.transfer is not None and cfg.transfer.preset == "resnet18"
    study = run_study(path, progress=False, probes=False)
    recs = [read_record(t) for t in study.trials]
    assert [r.state for r in recs] == ["complete", "complete"], [r.reason for r in recs]
    expected = preset("resnet18", (3, 16, 16), 2, small=False).to_dict()
    assert all(r.arch == expected for r in recs)
    assert {r.transfer["mode"] for r in recs} == {"feature_extraction", "fine_tune"}
    frozen = {r.transfer["mode"]: r.transfer["frozen"] for r in recs}
    # fine_tune of the top block: the stem and the seven blocks below it stay as loaded
    assert len(frozen["fine_tune"]) == 8 and frozen["feature_extraction"]
    # another checkpoint under the same name: the resume says so instead of mixing trials
    torch.manual_seed(1)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    with pytest.raises(NasdepthError, match="checkpoint models/resnet18.pth has other contents"):
        run_study(path, progress=False, probes=False)
    # a preset names a state_dict's network only: the space may not sample one, and a
    # misspelt preset gets the closest name
    raw = yaml.safe_load(path.read_text())
    raw["transfer"]["preset"] = "resnet81"
    with pytest.raises(NasdepthError, match="Did you mean 'resnet18'"):
        load_study(_write(path, raw))
    raw["transfer"]["preset"], raw["space"] = "resnet18", {"width": 8}
    with pytest.raises(ConfigError, match="the preset resnet18"):
        load_study(_write(path, raw))


def test_a_checkpoint_replaced_mid_study_fails_the_trial_not_mixes(exported: Path,
                                                                   tmp_path: Path) -> None:
    """The checkpoint is checked before and after every trial, not only at the start."""
    import shutil

    from nasdepth.study.identity import check_checkpoint

    folder = tmp_path / "t"
    (folder / "models").mkdir(parents=True)
    shutil.copy(exported, folder / "models" / "source.pt")
    path = _target(folder, {"weights": "models/source.pt", "mode": "fine_tune"})
    cfg = load_study(path)
    check_checkpoint(cfg)  # unchanged: nothing to say
    with open(folder / "models" / "source.pt", "ab") as f:
        f.write(b"another checkpoint")
    with pytest.raises(NasdepthError, match="changed while study 'target' ran"):
        check_checkpoint(cfg)
    study = run_study(cfg, trials=1, progress=False, probes=False, max_failures=1)
    reasons = [str(read_record(t).reason) for t in study.trials]
    assert len(reasons) == 1 and "changed while study 'target' ran" in reasons[0]
    assert not read_record(study.trials[0]).cv_folds  # nothing trained on the new file


def test_a_preset_that_does_not_fit_its_checkpoint_is_refused_before_any_trial(
        tmp_path: Path) -> None:
    import torch
    import torchvision

    weights = tmp_path / "models" / "resnet18.pth"
    weights.parent.mkdir()
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    path = _write(tmp_path / "studies" / "tv.yaml", {
        "name": "tv", "data": {"source": "synthetic:classification", "n_samples": 48,
                               "n_classes": 2, "image_shape": [3, 16, 16]},
        "space": {}, "cv": {"folds": 2}, "training": {"epochs": 1, "batch_size": 16},
        "budget": {"trials": 2}, "transfer": {"weights": "models/resnet18.pth",
                                              "preset": "resnet34", "mode": "fine_tune"}})
    with pytest.raises(ConfigError, match="The 'transfer.preset' value in .* must be the "
                                          "network the checkpoint models/resnet18.pth holds"):
        run_study(path, progress=False, probes=False)
    assert not (tmp_path / "studies" / "tv.journal").exists()  # no trial, no storage
