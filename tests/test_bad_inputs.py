"""Bad input and faults, one table: each row is what a careless or hostile user does, the exit
status and a fragment of the one message it must get, with no traceback, and the study's stored
trials unchanged (error rows write no file at all).

Every row runs the real CLI on a copy of one real study (2 trials on digits, in a journal file);
a few rows also run as a separate process, to see the real exit status and stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from nasdepth.cli import main
from nasdepth.redact import redact, scrub
from nasdepth.study import run_study
from nasdepth.study.record import read_record
from tests.conftest import TINY_SPACE, write_study

STUDY = "studies/tiny.yaml"
JOURNAL = "studies/tiny.journal"
SECRET = "Secret99"
BASE = {"data": {"source": "sklearn:digits", "limit": 200}, "cv": {"folds": 2},
        "training": {"epochs": 1, "batch_size": 64, "lr": 0.01}, "budget": {"trials": 2}}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real study with 2 trained trials in its journal file."""
    folder = tmp_path_factory.mktemp("base")
    write_study(folder, **BASE)
    run_study(folder / STUDY, progress=False, probes=False)
    from nasdepth.export import export_model  # a model file and unlabelled rows to predict

    cwd = Path.cwd()
    os.chdir(folder)
    try:
        export_model(STUDY, "best", "model.pt", say=lambda _: None)
    finally:
        os.chdir(cwd)
    from sklearn.datasets import load_digits

    np.save(folder / "rows.npy", load_digits().data[:5].reshape(5, 1, 8, 8).astype(np.float32))
    return folder


# ------------------------------------------------------------------ helpers for the rows
def edit_study(folder: Path, **changes: Any) -> None:
    path = folder / STUDY
    raw = yaml.safe_load(path.read_text())
    raw.update(changes)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def fresh_study(folder: Path, **changes: Any) -> None:
    """The study under a new name (no stored trials), with ``changes``."""
    edit_study(folder, name="fresh", **changes)


def append_half_record(folder: Path) -> None:
    """A crash mid-write: the first half of a record, no line end."""
    journal = folder / JOURNAL
    record = journal.read_bytes().splitlines()[-1]
    with open(journal, "ab") as f:
        f.write(record[: len(record) // 2])


def damage_line(number: int) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        journal = folder / JOURNAL
        lines = journal.read_bytes().splitlines(keepends=True)
        lines[number - 1] = lines[number - 1][:15] + b"\x00\x00garbage\n"
        journal.write_bytes(b"".join(lines))

    return damage


def npz_with_rare_class(folder: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.array([0] * 30 + [1] * 30 + [2] * 2)
    np.savez(folder / "rare.npz", x=rng.normal(size=(len(y), 8)).astype(np.float32), y=y)
    fresh_study(folder, data="rare.npz", cv={"folds": 3})


def npz_of_objects(folder: Path) -> None:
    np.savez(folder / "objects.npz", x=np.array([[1, "a"]] * 10, dtype=object),
             y=np.array([0, 1] * 5))
    fresh_study(folder, data="objects.npz")


def image_folder_with_a_corrupt_file(folder: Path) -> None:
    from PIL import Image

    for c in ("cat", "dog"):
        (folder / "pets" / c).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(folder / "pets" / c / f"{i}.png")
    (folder / "pets" / "dog" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    fresh_study(folder, data="imagefolder:pets")


def not_utf8(relative: str) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        path = folder / relative
        path.write_bytes(path.read_bytes() + "# caf\xe9\n".encode("latin-1"))

    return write


def write_text(relative: str, text: str) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        (folder / relative).write_text(text)

    return write


def other_space(folder: Path) -> None:
    space = {**TINY_SPACE, "depth": {"type": "int", "low": 1, "high": 3}}
    (folder / "search_spaces" / "wider.yaml").write_text(yaml.safe_dump(space))


def huge_candidates(folder: Path) -> None:
    """Every candidate needs terabytes: the CPU allocator refuses each one at once."""
    space = {"name": "huge", "stages": 1, "depth": 2, "width": 2**20, "block": "plain",
             "skip": False}
    (folder / "search_spaces" / "huge.yaml").write_text(yaml.safe_dump(space))
    fresh_study(folder, space="search_spaces/huge.yaml",
                data={"source": "synthetic:classification", "n_samples": 100})


def unnamed_study_file(name: str) -> Callable[[Path], None]:
    """A study file without 'name:' (its name is then the file's stem)."""
    def write(folder: Path) -> None:
        raw = yaml.safe_load((folder / STUDY).read_text())
        raw.pop("name")
        (folder / "studies" / name).write_text(yaml.safe_dump(raw, sort_keys=False))

    return write


LAUGHS = "".join(f"{a}: &{a} [{', '.join([f'*{b}'] * 9)}]\n"
                 for b, a in zip("abcdefgh", "bcdefghi", strict=True))


def billion_laughs(key: str) -> Callable[[Path], None]:
    """A 500-byte study file whose ``key`` expands to 9**9 strings through aliases."""
    def write(folder: Path) -> None:
        text = (folder / STUDY).read_text().replace("name: tiny\n", "")
        (folder / STUDY).write_text(f"a: &a ['lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol', "
                                    f"'lol', 'lol']\n{LAUGHS}{key}: *i\n{text}")

    return write


def space_with(**params: Any) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        (folder / "search_spaces" / "big.yaml").write_text(
            yaml.safe_dump({**TINY_SPACE, "name": "big", **params}))
        fresh_study(folder, space="search_spaces/big.yaml")

    return write


def crafted_pickle(folder: Path) -> None:
    """A model file whose unpickling would run a shell command."""
    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, ("touch pwned",))

    torch.save({"format": "nasdepth-model", "payload": Evil()}, folder / "evil.pt")


def declares_a_huge_network(folder: Path) -> None:
    """A model file with small weights whose metadata declares a network of terabytes."""
    raw = torch.load(folder / "model.pt", weights_only=True)
    meta = json.loads(raw["metadata"])
    for stage in meta["arch"]["stages"]:
        stage["width"], stage["depth"] = 2**20, 100
    raw["metadata"] = json.dumps(meta)
    torch.save(raw, folder / "huge.pt")


def a_file(name: str) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        (folder / name).write_text("a file, not a folder\n")

    return write


def both(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def run(folder: Path) -> None:
        for step in steps:
            step(folder)

    return run


def no_cuda(reason: str = "this machine has CUDA") -> Any:
    return pytest.mark.skipif(torch.cuda.is_available(), reason=reason)


@dataclass
class Row:
    id: str
    argv: list[str]
    status: int
    fragment: str
    setup: Callable[[Path], None] | None = None
    #: strings that must appear nowhere in the output (secrets)
    absent: tuple[str, ...] = ()
    #: "none": no file written or changed; "kept": stored trials unchanged, new ones allowed
    writes: str = "none"
    check: Callable[[Path], None] | None = None
    marks: list[Any] = field(default_factory=list)
    subprocess: bool = False


def _backup_kept(folder: Path) -> None:
    backups = list((folder / "studies").glob("tiny.journal.damaged-*"))
    assert len(backups) == 1
    assert not backups[0].read_bytes().endswith(b"\n")  # the file as it was


def _new_trials_trained_under_new_settings(folder: Path) -> None:
    trials = _trials(folder)
    old, new = trials[:2], trials[2:]
    assert new and all(t["state"] == "COMPLETE" for t in new)
    assert {t["settings_id"] for t in new}.isdisjoint({t["settings_id"] for t in old})
    # never a score copied from a trial of the old settings
    assert all(t["duplicate_of"] not in {o["number"] for o in old} for t in new)


def _fail_reasons_are_out_of_memory(folder: Path) -> None:
    study = optuna.load_study(study_name="fresh", storage=_storage(folder, "fresh"))
    reasons = [str(read_record(t).reason) for t in study.trials]
    assert len(reasons) == 5 and all(r.startswith("out of memory") for r in reasons), reasons


LONG = "n" * 300
PG_DOWN = f"postgresql://ann:Top@{SECRET}@127.0.0.1:9/nasdepth"

ROWS = [
    # ---- study names (checked before anything is written)
    Row("name-parent", ["run", STUDY, "--name", "../escaped"], 2, "The 'name' value in"),
    Row("name-absolute", ["run", STUDY, "--name", "/tmp/nasdepth-abs"], 2,
        "letters, digits, '.', '_' or '-'"),
    Row("name-slash", ["run", STUDY, "--name", "a/b"], 2, "Got 'a/b'"),
    Row("name-empty", ["run", STUDY, "--name", ""], 2, "Got ''", subprocess=True),
    Row("name-non-ascii", ["run", STUDY, "--name", "caf\u00e9"], 2,
        "'\u00e9' is not ASCII: the name becomes file names"),
    Row("task-named-mean", ["run", STUDY], 2,
        "The 'task name' value in studies/tiny.yaml must be a name other than 'mean' and 'all'",
        setup=lambda f: (write_text("t.csv", "f0,f1,mean,b\n" + "".join(
            f"{i},{i % 3},{i % 2},{i % 3}\n" for i in range(30)))(f),
            fresh_study(f, data={"source": "t.csv", "target": ["mean", "b"]},
                        tasks={"names": ["mean", "b"]}))),
    Row("space-recurrent-block-on-images", ["run", STUDY], 2,
        "The 'block' value in search_spaces/big.yaml must be one of",
        setup=space_with(block="lstm")),
    Row("name-long", ["run", STUDY, "--name", LONG], 2, "(300 characters)"),
    Row("name-long-remote", ["run", STUDY, "--name", LONG, "--storage", PG_DOWN], 2,
        "1 to 100 ASCII characters"),
    Row("name-from-file-stem", ["run", "studies/my study.yaml"], 2, "Got 'my study'",
        setup=unnamed_study_file("my study.yaml")),
    # ---- settings no trial can train under: refused before the first trial
    Row("device-tpu", ["run", STUDY, "--name", "fresh", "--device", "tpu"], 2,
        "The '--device' value in the command line must be one of auto, cpu", subprocess=True),
    Row("device-tpu-in-the-study-file", ["run", STUDY], 2,
        "The 'training.device' value in studies/tiny.yaml must be one of auto, cpu",
        setup=lambda f: fresh_study(f, training={**BASE["training"], "device": "tpu"})),
    Row("device-cuda-missing", ["run", STUDY, "--name", "fresh", "--device", "cuda"], 2,
        "The '--device' value in the command line must be a device this machine has",
        marks=[no_cuda()]),
    Row("test-size-above-data", ["run", STUDY], 2, "The 'cv.test_size' value",
        setup=lambda f: fresh_study(f, cv={"folds": 2, "test_size": 5000})),
    Row("augment-flat-data", ["run", STUDY], 2, "augmentation needs 1-D or 2-D samples",
        setup=lambda f: fresh_study(
            f, data={"source": "synthetic:classification", "n_samples": 100},
            training={"epochs": 1, "augment": {"flip": 0.5}})),
    Row("class-smaller-than-folds", ["run", STUDY], 2, "class '2' has only 2 samples",
        setup=npz_with_rare_class),
    # ---- storages: passwords never printed, paths that cannot be made
    Row("password-with-at", ["run", STUDY, "--name", "fresh", "--storage", PG_DOWN], 2,
        "Cannot open the storage postgresql://ann:***@127.0.0.1:9/nasdepth",
        absent=(SECRET, "Top@")),
    Row("password-in-pg-query", ["run", STUDY, "--name", "fresh", "--storage",
                                 f"postgresql://ann@127.0.0.1:9/db?password={SECRET}"], 2,
        "password=***", absent=(SECRET,)),
    Row("password-in-redis-query", ["run", STUDY, "--name", "fresh", "--storage",
                                    f"redis://127.0.0.1:9/0?password={SECRET}"], 2,
        "Cannot open the storage redis://127.0.0.1:9/0?password=***", absent=(SECRET,)),
    Row("password-in-libpq-keywords", ["run", STUDY, "--name", "fresh", "--storage",
                                       f"host=127.0.0.1 port=9 dbname=db user=ann "
                                       f"password={SECRET}"], 2,
        "Cannot open the storage postgresql://ann:***@127.0.0.1:9/db", absent=(SECRET,)),
    Row("password-in-quoted-libpq-keywords", ["run", STUDY, "--name", "fresh", "--storage",
                                              f"host=127.0.0.1 port=9 password='{SECRET} x'"],
        2, "Cannot open the storage postgresql://127.0.0.1:9/?password=***",
        absent=(SECRET,)),
    Row("password-in-libpq-keywords-report", ["report", STUDY, "--no-baselines", "--storage",
                                              f"host=127.0.0.1 port=9 password={SECRET}"], 2,
        "Cannot open the storage postgresql://127.0.0.1:9/?password=***", absent=(SECRET,)),
    Row("libpq-keyword-misspelt", ["run", STUDY, "--name", "fresh", "--storage",
                                   f"hots=127.0.0.1 password={SECRET}"], 2,
        "Did you mean 'host'?", absent=(SECRET,)),
    Row("password-but-no-connection-string", ["run", STUDY, "--name", "fresh", "--storage",
                                              f"password={SECRET} x"], 2,
        "libpq keywords such as", absent=(SECRET,)),
    Row("journal-path-not-creatable", ["run", STUDY, "--storage", "blocker/x.journal"], 2,
        "Cannot create the journal file blocker/x.journal", setup=a_file("blocker")),
    Row("report-folder-not-writable", ["run", STUDY, "--name", "fresh", "--out", "blocker/r"],
        2, "Cannot write the report folder blocker/r", setup=a_file("blocker")),
    Row("report-command-folder-not-writable", ["report", STUDY, "--out", "blocker/r",
                                               "--no-baselines"], 2,
        "Cannot write the report folder blocker/r", setup=a_file("blocker")),
    # ---- outputs never overwrite what the command reads (one guard: nasdepth.outpath)
    Row("export-out-is-the-journal", ["export", STUDY, "--out", JOURNAL], 2,
        "The --out path studies/tiny.journal is the study storage this command reads"),
    Row("export-out-is-the-journal-respelled", ["export", STUDY, "--out",
                                                "./studies/../studies/tiny.journal"], 2,
        "is the study storage this command reads"),
    Row("export-out-is-the-study-file", ["export", STUDY, "--out", STUDY], 2,
        "is the study file this command reads"),
    Row("export-out-is-the-space-file", ["export", STUDY, "--out", "search_spaces/tiny.yaml"],
        2, "is the search-space file this command reads"),
    Row("export-out-not-writable", ["export", STUDY, "--out", "blocker/m.pt"], 2,
        "Cannot write the model file blocker/m.pt", setup=a_file("blocker")),
    Row("export-out-is-a-folder", ["export", STUDY, "--out", "studies"], 2,
        "The --out path studies is a folder"),
    Row("predict-out-is-the-model", ["predict", "model.pt", "rows.npy", "--out", "model.pt"],
        2, "The --out path model.pt is the model file this command reads"),
    Row("predict-out-is-the-data", ["predict", "model.pt", "rows.npy", "--out", "rows.npy"],
        2, "is the data file this command reads"),
    Row("predict-out-is-the-data-in-a-mapping", ["predict", "model.pt", "{source: rows.npy}",
                                                 "--out", "rows.npy"], 2,
        "is the data file this command reads"),
    Row("predict-replaces-a-file", ["predict", "model.pt", "rows.npy", "--out", "old.csv"], 0,
        "old.csv exists; it will be replaced", setup=write_text("old.csv", "x\n"),
        writes="kept"),
    Row("report-out-holds-an-input", ["report", STUDY, "--out", ".", "--no-baselines"], 2,
        "holds the data file trials.csv",
        setup=lambda f: (write_text("trials.csv", "a,b\n1,0\n")(f),
                         edit_study(f, name="fresh", data="trials.csv"))),
    Row("run-out-is-the-study-file", ["run", STUDY, "--out", STUDY], 2,
        "The --out path studies/tiny.yaml is the study file"),
    # ---- unbounded inputs: refused before anything is built
    Row("study-name-billion-laughs", ["run", STUDY], 2,
        "The study file studies/tiny.yaml expands to more than 200000 values through its "
        "aliases", setup=billion_laughs("name"), subprocess=True),
    Row("study-description-billion-laughs", ["run", STUDY], 2, "expands to more than",
        setup=billion_laughs("description")),
    Row("study-nested-too-deep", ["run", STUDY], 2, "nests deeper than 64 levels",
        setup=write_text(STUDY, "name: tiny\ndescription: " + "[" * 500 + "]" * 500 + "\n")),
    Row("space-width-a-billion", ["run", STUDY], 2,
        "The 'width' value in search_spaces/big.yaml must be an int <= 1048576. Got 1000000000",
        setup=space_with(width={"type": "int", "low": 8, "high": 1_000_000_000})),
    Row("space-float-high-1e30", ["run", STUDY], 2,
        "The 'lr.high' value in search_spaces/big.yaml must be a number between -1e+15 and "
        "1e+15. Got 1e+30", setup=space_with(lr={"type": "float", "low": 0.001,
                                                 "high": 1e30})),
    Row("space-width-multiplier-1e30", ["run", STUDY], 2, "must be a number <= 1024",
        setup=space_with(width_multiplier=1e30)),
    Row("space-depth-a-million", ["run", STUDY], 2, "must be an int <= 10000",
        setup=space_with(depth=1_000_000)),
    Row("epochs-a-billion", ["run", STUDY, "--name", "fresh", "--epochs", "1000000000"], 2,
        "The 'epochs' value in studies/tiny.yaml must be an int from 1 to 100000"),
    Row("model-declares-a-huge-network", ["predict", "huge.pt", "rows.npy", "--out", "p.csv"],
        2, "declares a network of", setup=declares_a_huge_network),
    Row("model-crafted-pickle", ["predict", "evil.pt", "rows.npy", "--out", "p.csv"], 2,
        "The model file evil.pt holds code objects (posix.system) and was refused for safety",
        setup=crafted_pickle, absent=("weights_only", "Re-running", "trusted source")),
    # ---- user data files: one reader for load_data and predict
    Row("predict-empty-csv", ["predict", "model.pt", "empty.csv"], 2,
        "must be a CSV file; this file is empty (0 bytes)", setup=write_text("empty.csv", "")),
    Row("predict-blank-csv", ["predict", "model.pt", "blank.csv"], 2,
        "must be a CSV file with a header and rows; it holds no columns",
        setup=write_text("blank.csv", "\n\n")),
    Row("predict-header-only-csv", ["predict", "model.pt", "head.csv"], 2, "and no rows",
        setup=write_text("head.csv", "a,b,c\n")),
    Row("predict-latin1-csv", ["predict", "model.pt", "latin.csv"], 2,
        "is not UTF-8 (Latin-1 or Windows text?): save it as UTF-8",
        setup=lambda f: (f / "latin.csv").write_bytes("caf\xe9,b\n1,2\n".encode("latin-1"))),
    Row("predict-empty-npy", ["predict", "model.pt", "empty.npy"], 2,
        "this file is empty (0 bytes)", setup=write_text("empty.npy", "")),
    Row("predict-npz-not-a-zip", ["predict", "model.pt", "text.npz"], 2,
        "must be a .npz file (a zip archive of .npy arrays, as np.savez writes it); this file "
        "is no zip archive", setup=write_text("text.npz", "x,y\n1,2\n")),
    Row("predict-npy-not-numpy", ["predict", "model.pt", "text.npy"], 2,
        "must be a .npy file as np.save writes it", setup=write_text("text.npy", "hello\n")),
    Row("run-latin1-csv", ["run", STUDY], 2, "is not UTF-8",
        setup=lambda f: ((f / "latin.csv").write_bytes(
            "caf\xe9,target\n1,0\n2,1\n".encode("latin-1")), fresh_study(f, data="latin.csv"))),
    Row("run-npz-not-a-zip", ["run", STUDY], 2, "this file is no zip archive",
        setup=lambda f: (write_text("text.npz", "x")(f), fresh_study(f, data="text.npz"))),
    Row("diagnose-arch-yaml-error", ["diagnose", "--data", "sklearn:digits", "--arch", "a.yaml"],
        2, "The --arch file a.yaml is not valid YAML at line 3, column 1",
        setup=write_text("a.yaml", "stages:\n  - {block: plain, depth: [2\n")),
    Row("diagnose-arch-inline-yaml-error", ["diagnose", "--data", "sklearn:digits", "--arch",
                                            "{stages: [}"], 2,
        "The --arch mapping is not valid YAML at line 1, column"),
    # ---- damaged journals
    Row("journal-last-record-cut", ["run", STUDY, "--no-report"], 0,
        "the last record of studies/tiny.journal was cut short", setup=append_half_record,
        writes="kept", check=_backup_kept),
    Row("journal-record-damaged-inside", ["run", STUDY], 2,
        "has a damaged record on line 3 of", setup=damage_line(3), writes="damaged"),
    Row("journal-damaged-inside-report", ["report", STUDY], 2,
        "head -n 2 studies/tiny.journal.bak", setup=damage_line(3), writes="damaged"),
    # ---- a resume that changes the study
    Row("resume-other-epochs", ["run", STUDY, "--epochs", "2"], 2,
        "was run with other settings (training.epochs: 1 -> 2). Start a new study with "
        "--name NEW_NAME", subprocess=True),
    Row("resume-other-folds", ["run", STUDY, "--folds", "3"], 2, "cv.folds: 2 -> 3"),
    Row("resume-other-data", ["run", STUDY], 2,
        "data: sklearn:digits[200] (200 samples, shape (1, 8, 8), 10 classes) -> "
        "sklearn:digits[150]",
        setup=lambda f: edit_study(f, data={"source": "sklearn:digits", "limit": 150})),
    Row("resume-other-space", ["run", STUDY, "--space", "search_spaces/wider.yaml"], 2,
        "space: parameter 'depth' changed", setup=other_space),
    Row("resume-space-budget-added", ["run", STUDY], 2,
        "was run with other settings (space_settings.budget.max_params: None -> 20000",
        setup=lambda f: (f / "search_spaces" / "tiny.yaml").write_text(yaml.safe_dump(
            {**TINY_SPACE, "input_shape": [1, 8, 8], "budget": {"max_params": 20000}}))),
    Row("resume-other-objectives", ["run", STUDY, "--objectives", "val_f1_macro"], 2,
        "objectives"),
    Row("resume-allow-changes", ["run", STUDY, "--epochs", "2", "--trials", "4",
                                 "--allow-changes", "--no-report"], 0,
        "continues under changed settings (--allow-changes): training.epochs: 1 -> 2",
        writes="kept", check=_new_trials_trained_under_new_settings),
    # ---- files that are not what they should be
    Row("study-not-utf8", ["run", STUDY], 2, "is not UTF-8 text", setup=not_utf8(STUDY)),
    Row("space-not-utf8", ["run", STUDY], 2,
        "The search-space file search_spaces/tiny.yaml is not UTF-8",
        setup=not_utf8("search_spaces/tiny.yaml")),
    Row("study-yaml-syntax", ["run", STUDY], 2,
        "The study file studies/tiny.yaml is not valid YAML at line 3, column",
        setup=write_text(STUDY, "name: tiny\ncv: [2, 3\ndata: sklearn:digits\n")),
    Row("study-yaml-python-tag", ["run", STUDY], 2, "is not valid YAML",
        setup=write_text(STUDY, "name: !!python/object/apply:os.system ['touch pwned']\n")),
    Row("study-is-a-folder", ["run", "studies"], 2, "The study file studies is a folder"),
    Row("study-missing", ["run", "studies/nope.yaml"], 2,
        "The study file studies/nope.yaml does not exist"),
    Row("image-corrupt", ["run", STUDY], 2, "must be a readable image",
        setup=image_folder_with_a_corrupt_file),
    Row("npz-object-array", ["run", STUDY], 2, "holds Python objects", setup=npz_of_objects),
    # ---- trials that all fail: a non-zero exit with the reasons
    Row("no-trial-completes", ["run", STUDY, "--no-report"], 1,
        "No trial of this run completed: 5 failed (5 x out of memory (RuntimeError",
        setup=huge_candidates, writes="kept", check=_fail_reasons_are_out_of_memory),
]


# ------------------------------------------------------------------ reading what is stored
def _storage(folder: Path, name: str = "tiny") -> JournalStorage:
    # Optuna's own reader, not ours: it must not repair anything
    return JournalStorage(JournalFileBackend(str(folder / "studies" / f"{name}.journal")))


def _trials(folder: Path) -> list[dict[str, Any]]:
    study = optuna.load_study(study_name="tiny", storage=_storage(folder))
    records = [(t, read_record(t)) for t in study.trials]
    return [{"number": t.number, "state": t.state.name, "params": t.params, "values": t.values,
             "cv_folds": rec.cv_folds, "settings_id": rec.settings_id,
             "duplicate_of": rec.duplicate_of} for t, rec in records]


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(row: Row, cwd: Path, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    if row.subprocess:
        proc = subprocess.run([sys.executable, "-m", "nasdepth", *row.argv, "--no-progress"],
                              cwd=cwd, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1",
                                   "PYTHONPATH": str(Path(__file__).parents[1])})
        return proc.returncode, proc.stdout, proc.stderr
    status = main([*row.argv, *(["--no-progress"] if row.argv[0] == "run" else [])])
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id, marks=r.marks) for r in ROWS])
def test_bad_input(row: Row, base: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    shutil.copytree(base, work)
    before = _trials(work)
    if row.setup is not None:
        row.setup(work)
    files = _files(tmp_path)
    monkeypatch.chdir(work)
    status, out, err = _run(row, work, capsys)
    assert status == row.status, (out, err)
    assert "Traceback" not in out + err
    assert row.fragment in err, err
    for secret in row.absent:
        assert secret not in out + err
    if row.status == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("nasdepth: error: "), err
    if row.writes == "none":
        assert _files(tmp_path) == files  # nothing written, nothing changed
        assert _trials(work) == before
    elif row.writes == "kept":
        assert _trials(work)[: len(before)] == before
    else:  # a damaged journal is refused untouched
        assert _files(tmp_path) == files
    if row.check is not None:
        row.check(work)
    assert not (work / "pwned").exists()


# ------------------------------------------------------------------ redaction, over a table
URLS = [
    ("postgresql://ann:Top@Secret99@host/db", "postgresql://ann:***@host/db"),
    ("postgresql://ann:s3cr:et@host:5432/db", "postgresql://ann:***@host:5432/db"),
    ("postgresql://ann:a/b?c#d@host/db", "postgresql://ann:***@host/db"),
    ("postgresql+psycopg2://ann:Secret99@host/db", "postgresql+psycopg2://ann:***@host/db"),
    ("postgresql://ann@host/db", "postgresql://ann@host/db"),
    ("postgresql://host/db?password=Secret99", "postgresql://host/db?password=***"),
    ("postgresql://host/db?sslmode=require&password=Secret99&application_name=x",
     "postgresql://host/db?sslmode=require&password=***&application_name=x"),
    ("postgresql://host/db?PassWord=Secret99", "postgresql://host/db?PassWord=***"),
    ("postgresql://host/db?sslpassword=Secret99", "postgresql://host/db?sslpassword=***"),
    ("mysql://root:Secret99@db:3306/optuna", "mysql://root:***@db:3306/optuna"),
    ("redis://:Secret99@redis:6379/0", "redis://:***@redis:6379/0"),
    ("redis://default:Secret99@redis:6379/0", "redis://default:***@redis:6379/0"),
    ("redis://redis:6379/0?password=Secret99", "redis://redis:6379/0?password=***"),
    ("rediss://redis:6380/0?db=1&password=Secret99", "rediss://redis:6380/0?db=1&password=***"),
    ("redis://redis/0?token=Secret99", "redis://redis/0?token=***"),
    ("sqlite:///studies/x.db", "sqlite:///studies/x.db"),
    ("studies/x.journal", "studies/x.journal"),
    ("postgresql://ann:Secret%4099@host/db", "postgresql://ann:***@host/db"),
    ("host=db user=ann password=Secret99 dbname=x", "host=db user=ann password=*** dbname=x"),
    ("host=db password='Secret99 with spaces' dbname=x", "host=db password=*** dbname=x"),
    ("host=db sslpassword = Secret99", "host=db sslpassword = ***"),
]


@pytest.mark.parametrize(("text", "url"), [
    ("host=db port=5433 dbname=x user=ann password=Secret99",
     "postgresql://ann:Secret99@db:5433/x"),
    ("host=db user=ann password='p@ss w\\'rd' sslmode=require",
     "postgresql://ann:p%40ss%20w%27rd@db/?sslmode=require"),
    ("dbname=test", "postgresql:///test"),
    ("host=/var/run/postgresql dbname=x", "postgresql:///x?host=%2Fvar%2Frun%2Fpostgresql"),
    ("host=a,b port=1,2 dbname=x", "postgresql:///x?host=a%2Cb&port=1%2C2"),
    ("studies/x.journal", "studies/x.journal"),
    ("runs/lr=0.1.journal", "runs/lr=0.1.journal"),
    ("postgresql://ann:x@db/y", "postgresql://ann:x@db/y"),
])
def test_libpq_keyword_form_is_the_uri_it_means(text: str, url: str) -> None:
    from nasdepth.study.storage import storage_kind, storage_url

    assert storage_url(text) == url
    assert storage_kind(text) == ("journal" if "journal" in text else "rdb")


@pytest.mark.parametrize(("url", "shown"), URLS)
def test_redact_hides_every_secret(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert "Secret99" not in redact(url) and "Secret" not in redact(url)
    # a driver's message may quote the password its own way (decoded, bare)
    message = f"connection to {url} failed: password 'Secret99' or 'Secret@99' rejected"
    if "Secret" in url:
        assert "Secret99" not in scrub(message, url)


def test_a_damaged_last_record_is_never_appended_to(base: Path, tmp_path: Path) -> None:
    """The failure the check prevents: without it the next append lands on the half line."""
    work = tmp_path / "work"
    shutil.copytree(base, work)
    append_half_record(work)
    damaged = (work / JOURNAL).read_bytes()
    study = run_study(work / STUDY, trials=3, progress=False, probes=False)
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 3
    lines = (work / JOURNAL).read_bytes().splitlines()
    for line in lines:  # every record readable by Optuna's own reader, again and again
        json.loads(line)
    assert len(optuna.load_study(study_name="tiny", storage=_storage(work)).trials) == 3
    backup = next((work / "studies").glob("tiny.journal.damaged-*"))
    assert backup.read_bytes() == damaged


def test_export_checks_its_output_before_the_refit_trains(base: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    import nasdepth.export

    def refit(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the refit started before the output was checked")

    monkeypatch.setattr(nasdepth.export, "export_model", refit)
    work = tmp_path / "work"
    shutil.copytree(base, work)
    (work / "blocker").write_text("a file\n")
    monkeypatch.chdir(work)
    assert main(["export", STUDY, "--out", "blocker/m.pt"]) == 2
    assert "Cannot write the model file blocker/m.pt" in capsys.readouterr().err


def test_the_output_guard_follows_symlinks(tmp_path: Path) -> None:
    """A link to an input is that input; a dangling link's target folder is made (the file is
    written there), so the write after hours of training cannot fail on it."""
    from nasdepth.errors import NasdepthError
    from nasdepth.outpath import check_output

    (tmp_path / "x.journal").write_text("{}\n")
    (tmp_path / "to-journal").symlink_to(tmp_path / "x.journal")
    with pytest.raises(NasdepthError, match="is the study storage this command reads"):
        check_output(tmp_path / "to-journal", {"study storage": str(tmp_path / "x.journal")})
    (tmp_path / "dangling.pt").symlink_to(tmp_path / "a" / "b" / "m.pt")
    notes: list[str] = []
    check_output(tmp_path / "dangling.pt", {}, say=notes.append)
    assert (tmp_path / "a" / "b").is_dir() and notes == []
