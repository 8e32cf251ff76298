"""One guard for every path a command writes (``--out``): checked before any work starts.

An output path that names a file the same command reads (the study's storage, the model file,
the data file, the study or space file) would destroy it: ``nasdepth export x.yaml --out
x.journal`` used to exit 0 with the study gone. So the guard refuses an output that is one of
the command's inputs (the same file by any spelling: ``./x``, a symlink, a hard link), says when
an existing file will be replaced, and checks that the file can be written before hours of
training, not after.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from nasdepth.errors import NasdepthError

Say = Callable[[str], None]


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (existing: by inode; else by resolved path)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except (OSError, ValueError):
        return False


def resolve_path(path: str, study_path: Path) -> Path:
    """A path a study file names (space, checkpoint) as written, else relative to the study
    file, else to its parent folder."""
    for candidate in (Path(path), study_path.parent / path, study_path.parent.parent / path):
        if candidate.is_file():
            return candidate
    return Path(path)


def input_path(spec: object) -> Path | None:
    """The file a data spec, storage URL or path names, or None (``sklearn:digits``,
    ``postgresql://...`` and other non-files)."""
    if isinstance(spec, Mapping):
        spec = spec.get("source")
    if not isinstance(spec, (str, os.PathLike)):
        return None
    text = os.fspath(spec)
    if not text or "://" in text:
        return None
    if ":" in text and not Path(text).exists() and not text.startswith((".", "/", "~")):
        return None  # a source name such as sklearn:digits, not a file
    return Path(text).expanduser()


def check_output(out: str | os.PathLike, inputs: Mapping[str, object], *, flag: str = "--out",
                 what: str = "output file", folder: bool = False,
                 say: Say | None = None) -> Path:
    """``out`` checked as the file (``folder``: the folder) a command is about to write.

    ``inputs``: what the command reads, by role (``"study storage": "x.journal"``); a data
    spec, URL or ``None`` is taken apart by :func:`input_path`. Refuses an output that is one
    of them or (for a file) an existing folder; creates the parent folder and checks it can be
    written in; says (through ``say``, default a note on stderr) when an existing file will be
    replaced."""
    path = Path(os.fspath(out)).expanduser()
    say = say or (lambda text: print(f"nasdepth: note: {text}", file=sys.stderr))
    for role, given in inputs.items():
        src = input_path(given)
        if src is not None and same_file(path, src):
            raise NasdepthError(f"The {flag} path {out} is the {role} this command reads; "
                                f"writing it would destroy it. Give another {what} path.")
        if src is not None and folder and src.resolve().parent == path.resolve() and \
                src.name in REPORT_FILES:
            raise NasdepthError(f"The {flag} folder {out} holds the {role} {src.name}, which "
                                "the report would overwrite. Give another folder.")
    if not folder and path.is_dir():
        raise NasdepthError(f"The {flag} path {out} is a folder; give a file path such as "
                            f"{path / ('model.pt' if 'model' in what else 'out.csv')}.")
    if folder and path.exists() and not path.is_dir():
        raise NasdepthError(f"The {flag} path {out} is a file, not a folder; give a folder.")
    # the place really written: through a symlink (even a dangling one), its target's folder
    where = path.resolve() if folder else path.resolve().parent
    try:
        where.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=where, prefix=".nasdepth-write-check-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise NasdepthError(f"Cannot write the {what} {out}: {reason} ({where}). Give another "
                            f"path with {flag}.") from None
    if not folder and path.exists():
        if not os.access(path, os.W_OK):
            raise NasdepthError(f"Cannot write the {what} {out}: the file exists and is "
                                f"read-only. Give another path with {flag}.")
        say(f"{out} exists; it will be replaced.")
    return path


#: files a report folder gets (a folder that holds an input of the same name is refused)
REPORT_FILES = ("index.html", "report.md", "trials.csv", "folds.csv", "diagnoses.csv",
                "baselines.csv")


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Have ``write`` write the file beside ``path``, then rename it over ``path``: an
    interrupted write leaves the old file whole (a model file, a study file a sweep writes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        write(part)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return path
