"""Journal files checked on open: a damaged last record is set aside, never appended to.

Optuna's journal is one JSON record per line, appended under a file lock. A crash or a full disk
mid-write leaves the last line cut short; Optuna skips such a line while reading, but the next
append lands on the same line and from then on every read fails with a ``JSONDecodeError``,
putting every stored trial out of reach. So before a journal is opened:

- a damaged **last** record (no line end, or not JSON) is cut off under the journal's lock; the
  file as it was is kept beside it (``<file>.damaged-<time>``) and one warning line names what
  was dropped (a record that was never complete: no finished trial is in it);
- a damaged record **inside** the file is refused with a message naming the line and how to
  recover the records before it (the records after it may depend on the lost one).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

from optuna.storages.journal._file import BaseJournalFileLock, get_lock_file

from nasdepth.errors import NasdepthError

#: bytes read from the end to find the last record (longer records are read whole)
TAIL_CHUNK = 1 << 16
OPS = ("create_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
       "create_trial", "set_trial_param", "set_trial_state_values",
       "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
       "discard_trials")


class DamagedJournalError(NasdepthError):
    """A record inside a journal file cannot be read."""


def _last_line(path: Path) -> tuple[int, bytes]:
    """(offset, bytes) of the file's last line (with its line end where it has one)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        pos = size
        tail = b""
        while pos > 0:
            step = min(TAIL_CHUNK, pos)
            pos -= step
            f.seek(pos)
            tail = f.read(step) + tail
            cut = tail.rfind(b"\n", 0, len(tail) - 1)  # the line end before the last line
            if cut >= 0:
                return pos + cut + 1, tail[cut + 1:]
        return 0, tail


def _readable(line: bytes) -> bool:
    if not line.endswith(b"\n"):
        return False
    try:
        json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return False
    return True


def _what(line: bytes) -> str:
    match = re.match(rb'\s*\{"op_code":\s*(\d+)', line)
    op = int(match.group(1)) if match else -1
    kind = f"{OPS[op]} " if 0 <= op < len(OPS) else ""
    return f"an incomplete {kind}record of {len(line)} bytes"


def check_journal(path: Path, lock: BaseJournalFileLock) -> None:
    """Set a damaged last record of the journal at ``path`` aside (see the module doc)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    _, line = _last_line(path)
    if _readable(line):
        return
    with get_lock_file(lock):  # a worker mid-append holds it: look again once it is done
        offset, line = _last_line(path)
        if _readable(line):
            return
        backup = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.copy2(path, backup)
        with open(path, "r+b") as f:
            f.truncate(offset)
            f.flush()
            os.fsync(f.fileno())
    print(f"nasdepth: warning: the last record of {path} was cut short ({_what(line)}, left by "
          f"a crash or a full disk mid-write) and is set aside; the file as it was is kept as "
          f"{backup}.", file=sys.stderr)


def locate_damage(path: Path) -> DamagedJournalError | None:
    """The first unreadable record inside the journal at ``path``, as an error to raise."""
    with open(path, "rb") as f:
        lines = f.readlines()
    for number, line in enumerate(lines, start=1):
        if not _readable(line):
            keep = number - 1
            return DamagedJournalError(
                f"The journal {path} has a damaged record on line {number} of {len(lines)} "
                f"({_what(line).replace('an incomplete', 'an unreadable')}); the records after "
                f"it may depend on it, so nasdepth does not guess. To recover the {keep} records "
                f"before it: cp {path} {path}.bak && head -n {keep} {path}.bak > {path} (the "
                "trials recorded after that line are lost; restore a backup to keep them).")
    return None
