"""A study's identity: what its trials' scores depend on, stored with the study and compared on
every resume.

The identity is the data (a digest of the loaded samples and labels, with their description),
the CV (splitter, folds, repeats, seed, test part), the training recipe (every ``TrainConfig``
field except where and how fast it runs), the search space and the objectives. A resume that
changes any of these would mix trials scored on different terms in one study (and copy earlier
scores into "duplicates" that were never trained under the new terms), so it is refused with the
changes named, unless the user passes ``--allow-changes``; space and objective changes are
refused always (Optuna cannot mix them). Trials carry ``settings_id``, the digest of the
identity they were trained under, so duplicates reuse only scores of the same settings.

The space's identity is its parameters and, where it has one, its ``budget`` with the input
shape and classes the budget counts on (a budget added before a resume rescales every
candidate: refused unless ``--allow-changes``, and never a score copied across it). A transfer
study's checkpoint is checked before and after every trial (:func:`check_checkpoint`).

What may change on a resume: the budget and timeout, sampler, pruner, storage heartbeats,
device, threads and the other execution settings below.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from nasdepth.data import Dataset
from nasdepth.errors import NasdepthError
from nasdepth.redact import redact
from nasdepth.study.study_file import StudyConfig, space_fingerprint

VERSION = 1
#: training settings that decide where and how fast a trial runs, not what it scores
EXECUTION_KEYS = ("device", "threads", "parallel", "channels_last", "compile", "data_placement")
#: identity parts ``--allow-changes`` cannot accept: the stored trials could not be read
ALWAYS_REFUSED = ("space", "objectives")


def data_digest(data: Dataset) -> str:
    """A digest of the samples and labels (and class names): the same data, the same digest,
    whatever path or spec it was loaded from."""
    h = hashlib.blake2b(digest_size=12)
    for t in (data.x, data.y):
        arr = np.ascontiguousarray(t.detach().cpu().numpy())
        h.update(str((arr.dtype.str, arr.shape)).encode())
        h.update(arr.data.cast("B"))
    h.update(json.dumps(list(data.class_names)).encode())
    for task in (data.tasks or {}).values():  # multitask only: single-task digests unchanged
        h.update(task.name.encode())
        h.update(np.ascontiguousarray(task.y_numpy).data.cast("B"))
    return h.hexdigest()


def study_identity(cfg: StudyConfig, data: Dataset | None) -> dict[str, Any]:
    """The identity of ``cfg`` on ``data`` (JSON), as stored with the study (without data:
    an empty data part)."""
    training = {k: v for k, v in cfg.training.to_dict().items() if k not in EXECUTION_KEYS}
    return {
        "version": VERSION,
        "data": {} if data is None else {"digest": data_digest(data), **data.to_dict()},
        "cv": cfg.cv.to_dict(),
        "training": training,
        "space": space_fingerprint(cfg.space),
        **({"space_settings": settings} if (settings := space_settings(cfg)) else {}),
        "objectives": list(cfg.objectives),
        **({"tasks": cfg.tasks.to_dict()} if cfg.tasks is not None else {}),
        **({} if cfg.transfer is None else {"transfer": cfg.transfer.to_dict()}),
    }


def space_settings(cfg: StudyConfig) -> dict[str, Any]:
    """What of the space besides its parameters decides a candidate's network: the budget
    (it rescales widths) and the shape and classes it counts on; empty where the space has no
    budget (so identities of spaces without one are unchanged)."""
    space = cfg.space
    if space.budget is None:
        return {}
    return {"budget": dataclasses.asdict(space.budget),
            "input_shape": list(space.input_shape or ()), "num_classes": space.num_classes}


def check_checkpoint(cfg: StudyConfig) -> None:
    """Before and after each transfer trial: the checkpoint is still the one the study
    started with (its digest), else the trial fails with the reason instead of mixing trials
    of two checkpoints in one study. Re-hashed only when the file's size or time changed."""
    section = cfg.transfer
    if section is None or not section.digest or not section.weights:
        return
    from nasdepth.study.transfer import file_digest

    path = Path(section.weights)
    try:
        st = path.stat()
    except OSError:
        raise NasdepthError(f"The checkpoint {path} of study '{cfg.name}' is gone since the "
                            "study started; its trials cannot go on.") from None
    stamp = (str(path), st.st_mtime_ns, st.st_size)
    if _checked.get(stamp) == section.digest:
        return
    now = file_digest(path)
    if now != section.digest:
        raise NasdepthError(f"The checkpoint {path} changed while study '{cfg.name}' ran "
                            f"(digest {section.digest} -> {now}); this trial is not trained on "
                            "it, so the study does not mix two checkpoints. Restore the file, "
                            "or start a new study (--name NEW_NAME) on the new one.")
    _checked[stamp] = now


_checked: dict[tuple[str, int, int], str] = {}


def settings_id(identity: dict[str, Any]) -> str:
    """A short digest of an identity (the data by its digest only)."""
    key = {**identity, "data": identity.get("data", {}).get("digest")}
    return hashlib.blake2b(json.dumps(key, sort_keys=True, default=str).encode(),
                           digest_size=6).hexdigest()


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    return {key: x for k, v in value.items() for key, x in _flat(v, f"{prefix}.{k}").items()}


def _diff(old: Any, new: Any, part: str, *, added: bool = False, skip: str = "") -> list[str]:
    """``key: old -> new`` for every flattened key of ``part`` that differs. A key only in
    ``new`` counts only with ``added``: else it is a setting added by a newer nasdepth, whose
    default is the old value."""
    a, b = _flat(old or {}, part), _flat(new or {}, part)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if k != skip and (added or k in a) and a.get(k) != b.get(k)]


def _space_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    before = {p["name"]: p for p in old}
    after = {p["name"]: p for p in new}
    out = [f"space: parameter '{n}' removed" for n in before if n not in after]
    out += [f"space: parameter '{n}' added" for n in after if n not in before]
    out += [f"space: parameter '{n}' changed" for n in after
            if n in before and before[n] != after[n]]
    return out


def _transfer_changes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    if old == new:
        return []
    if old is None or new is None:
        return [f"transfer: {'none' if old is None else 'a section'} -> "
                f"{'none' if new is None else 'a section'}"]
    out = []
    if old.get("digest") and new.get("digest") and old["digest"] != new["digest"]:
        out.append(f"transfer.weights: the checkpoint {new.get('weights')} has other contents")
    return out + _diff(old, new, "transfer", skip="transfer.digest")  # the digest: said above


def _describe_data(d: dict[str, Any]) -> str:
    return (f"{d.get('name')} ({d.get('n_samples')} samples, shape "
            f"{tuple(d.get('input_shape') or ())}, {d.get('num_classes')} classes)")


def changes(stored: dict[str, Any], mine: dict[str, Any]) -> list[str]:
    """What differs between a stored identity and this run's, one phrase each
    (``cv.folds: 3 -> 5``)."""
    out: list[str] = []
    old_data, new_data = stored.get("data") or {}, mine.get("data") or {}
    if old_data.get("digest") != new_data.get("digest"):
        out.append(f"data: {_describe_data(old_data)} -> {_describe_data(new_data)}"
                   if _describe_data(old_data) != _describe_data(new_data)
                   else "data: other samples or labels of the same size")
    for part in ("cv", "training"):
        out += _diff(stored.get(part), mine[part], part)
    out += _space_changes(stored.get("space") or [], mine["space"])
    out += _diff(stored.get("space_settings"), mine.get("space_settings"), "space_settings",
                 added=True)
    out += _transfer_changes(stored.get("transfer"), mine.get("transfer"))
    if stored.get("tasks") != mine.get("tasks"):
        out.append(f"tasks: {stored.get('tasks')} -> {mine.get('tasks')}")
    if (stored.get("objectives") or mine["objectives"]) != mine["objectives"]:
        out.append(f"objectives: {stored.get('objectives')} -> {mine['objectives']}")
    return out


def check_identity(cfg: StudyConfig, stored: dict[str, Any], mine: dict[str, Any], *,
                   allow_changes: bool) -> list[str]:
    """The changes of this run against the stored identity; raises where they are refused."""
    found = changes(stored, mine)
    if not found:
        return []
    where = f"The study '{cfg.name}' in {redact(cfg.storage_url)}"
    listed = "; ".join(found)
    fixed = [c for c in found if c.split(":", 1)[0].split(".")[0] in ALWAYS_REFUSED]
    if fixed:
        raise NasdepthError(f"{where} was run with another search space or objectives "
                            f"({'; '.join(fixed)}). Start a new study: --name NEW_NAME (or "
                            "'name:' in the study file).")
    if not allow_changes:
        raise NasdepthError(f"{where} was run with other settings ({listed}). Start a new "
                            "study with --name NEW_NAME (or 'name:' in the study file), or pass "
                            "--allow-changes to add trials under the new settings to it.")
    return found
