"""load_weights: torchvision checkpoints (random weights, saved by torchvision itself) load into
the presets and give torchvision's outputs; nasdepth files load into their own architecture;
wrong checkpoints are errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from nasdepth.arch import ArchConfig, build_model, load_weights, preset
from nasdepth.arch.weights import checkpoint_family, torchvision_key_map
from nasdepth.errors import NasdepthError

IMAGENET = (3, 224, 224)


def _randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """torchvision's init leaves biases at 0 and BatchNorm at weight 1, bias 0, mean 0, var 1:
    a wrong mapping of those would go unseen. Random values in every 1-D tensor (biases, norm
    weights and running statistics; variances kept positive) make every tensor count."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if t.is_floating_point() and t.dim() == 1:
                noise = torch.rand(t.shape, generator=gen)
                t.copy_(noise * 0.5 + (0.75 if key.endswith(("running_var", "weight"))
                                       else -0.25))
    return model.eval()


def _save(model: torch.nn.Module, path: Path) -> Path:
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    tv = _randomized(torchvision.models.resnet18(weights=None))
    return tv, _save(tv, tmp_path_factory.mktemp("w") / "resnet18.pth")


def _same_outputs(tv: torch.nn.Module, ours: torch.nn.Module, shape: tuple[int, ...]) -> float:
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = tv.eval()(x), ours.eval()(x)
    assert a.shape == b.shape
    return float((a - b).abs().max())


def test_resnet18_checkpoint_gives_torchvision_outputs(resnet18: tuple) -> None:
    tv, path = resnet18
    ours = load_weights(build_model(preset("resnet18", IMAGENET, 1000), IMAGENET, 1000), path)
    assert _same_outputs(tv, ours, IMAGENET) <= 1e-5
    # the mapping is one to one: every torchvision key feeds exactly one of ours
    km = torchvision_key_map(ours)
    assert sorted(km.values()) == sorted(tv.state_dict())


@pytest.mark.parametrize("name", ["densenet121", "mobilenet_v2", "googlenet"])
def test_other_family_checkpoints_give_torchvision_outputs(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    extra = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    tv = _randomized(getattr(torchvision.models, name)(weights=None, **extra))
    path = _save(tv, tmp_path / f"{name}.pth")
    ours = load_weights(build_model(preset(name, IMAGENET, 1000), IMAGENET, 1000), path)
    assert _same_outputs(tv, ours, IMAGENET) <= 1e-5


# every torchvision model the presets match: the key map covers its state_dict one to one,
# shapes agree (built on the meta device: no memory, no init)
MAPPED = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2",
          "resnext50_32x4d", "resnext101_32x8d", "vgg11", "vgg13", "vgg16", "vgg19",
          "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn", "densenet121", "densenet161",
          "densenet169", "densenet201", "mobilenet_v2", "googlenet"]


@pytest.mark.parametrize("name", MAPPED)
def test_key_map_covers_every_torchvision_tensor(name: str) -> None:
    from nasdepth.arch.weights import FAMILIES, model_family

    extra = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)(weights=None, **extra).state_dict()
        model = build_model(preset(name, IMAGENET, 1000), IMAGENET, 1000)
    ours = model.state_dict()
    family = model_family(model)
    assert family is not None
    km = FAMILIES[family][1](model)
    assert sorted(km.keys) == sorted(ours)
    assert sorted([*km.keys.values(), *km.folds.values()]) == sorted(theirs)
    for mine, tv in km.keys.items():
        assert ours[mine].shape == theirs[tv].shape, (mine, tv)


@pytest.mark.slow  # VGG's 25088x4096 classifier: a 530 MB checkpoint
def test_vgg11_bn_checkpoint_gives_torchvision_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    tv = _randomized(torchvision.models.vgg11_bn(weights=None))
    path = _save(tv, tmp_path / "vgg11_bn.pth")
    ours = load_weights(build_model(preset("vgg11_bn", IMAGENET, 1000), IMAGENET, 1000), path)
    # the conv biases torchvision keeps before BatchNorm are folded into the running means
    assert _same_outputs(tv, ours, IMAGENET) <= 1e-5


def test_another_class_count_keeps_a_fresh_classifier(resnet18: tuple) -> None:
    tv, path = resnet18
    torch.manual_seed(3)
    ours = build_model(preset("resnet18", IMAGENET, 10), IMAGENET, 10)
    fresh = ours.head[1].weight.detach().clone()
    load_weights(ours, path)
    assert torch.equal(ours.head[1].weight, fresh) and ours.head[1].weight.shape == (10, 512)
    assert torch.equal(ours.stem[0][0].weight, tv.conv1.weight)
    assert torch.equal(ours.blocks[7].conv2[1].running_var, tv.layer4[1].bn2.running_var)


def test_wrong_checkpoints_name_the_key(resnet18: tuple, tmp_path: Path) -> None:
    tv, path = resnet18
    model = build_model(preset("resnet18", IMAGENET, 1000), IMAGENET, 1000)
    state = tv.state_dict()
    missing = {k: v for k, v in state.items() if k != "layer3.1.bn2.running_var"}
    with pytest.raises(NasdepthError, match=r"lacks the key 'layer3.1.bn2.running_var'"):
        load_weights(model, _save_dict(missing, tmp_path / "missing.pth"))
    extra = {**state, "layer5.0.conv1.weight": torch.zeros(1)}
    with pytest.raises(NasdepthError, match=r"has the key 'layer5.0.conv1.weight'"):
        load_weights(model, _save_dict(extra, tmp_path / "extra.pth"))
    grey = build_model(preset("resnet18", (1, 224, 224), 1000), (1, 224, 224), 1000)
    with pytest.raises(NasdepthError, match=r"'conv1.weight' .* shape \(64, 3, 7, 7\).*"
                                            r"needs \(64, 1, 7, 7\)"):
        load_weights(grey, path)
    # another family: a ResNet checkpoint into a (small-input) VGG preset
    vgg = build_model(preset("vgg11_bn", (3, 32, 32), 10), (3, 32, 32), 10)
    with pytest.raises(NasdepthError, match=r"looks like a resnet checkpoint"):
        load_weights(vgg, path)
    # a model of no mapped family
    with pytest.raises(NasdepthError, match="resnet, vgg, densenet, mobilenet_v2, googlenet"):
        load_weights(torch.nn.Sequential(torch.nn.Linear(4, 2)), path)
    assert checkpoint_family(state) == "resnet"


def _save_dict(state: dict, path: Path) -> Path:
    torch.save(state, path)
    return path


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    model = build_model(ArchConfig.from_dict({"stages": [{"depth": 1, "width": 8}]}), (4,), 2)
    with pytest.raises(NasdepthError, match="does not exist"):
        load_weights(model, tmp_path / "none.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00\x01 not torch")
    with pytest.raises(NasdepthError, match="weights_only=True"):
        load_weights(model, junk)
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(NasdepthError, match="holds no state_dict"):
        load_weights(model, tmp_path / "list.pth")


def test_exported_model_loads_into_its_own_architecture(tmp_path: Path) -> None:
    from nasdepth.export import save_model

    arch = ArchConfig.from_dict({"stages": [{"block": "residual", "depth": 2, "width": 8}]})
    torch.manual_seed(0)
    trained = build_model(arch, (1, 8, 8), 10).eval()
    meta = {"arch": arch.to_dict(), "input_shape": [1, 8, 8],
            "class_names": [str(i) for i in range(10)]}
    path = save_model(tmp_path / "m.pt", [trained],
                      [(torch.zeros(1, 1, 1), torch.ones(1, 1, 1))], meta)
    torch.manual_seed(1)
    again = load_weights(build_model(arch, (1, 8, 8), 10), path).eval()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(again(x), trained(x))
    # a plain state_dict of the same network loads too
    torch.save(trained.state_dict(), tmp_path / "sd.pth")
    plain = load_weights(build_model(arch, (1, 8, 8), 10), tmp_path / "sd.pth").eval()
    with torch.no_grad():
        assert torch.equal(plain(x), trained(x))
    wider = ArchConfig.from_dict({"stages": [{"block": "residual", "depth": 3, "width": 8}]})
    with pytest.raises(NasdepthError, match=r"lacks the key 'blocks.2"):
        load_weights(build_model(wider, (1, 8, 8), 10), path)


def test_cli_checks_a_checkpoint_against_a_preset(resnet18: tuple,
                                                  capsys: pytest.CaptureFixture) -> None:
    from nasdepth.cli import main as cli

    _, path = resnet18
    assert cli(["arch", "resnet18", "--classes", "10", "--weights", str(path)]) == 0
    out = capsys.readouterr().out
    assert "from a torchvision resnet state_dict" in out and "head.1.weight" in out
    assert cli(["arch", "vgg11", "--input", "3x32x32", "--weights", str(path)]) == 2
    err = capsys.readouterr().err
    assert "looks like a resnet checkpoint" in err and "Traceback" not in err
