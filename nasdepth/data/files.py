"""The one reader of user data files (``.npy``, ``.npz``, CSV), shared by ``load_data`` and
``predict``: every way a file can be wrong is one message naming it, never a traceback.

Checked before NumPy or pandas sees the file: an empty file, a ``.npy`` without NumPy's magic
bytes, a ``.npz`` that is not a zip archive (NumPy would try to unpickle it), a CSV that is not
UTF-8 (Latin-1 from a spreadsheet) or has no header or rows. Arrays of Python objects are
refused: they would be unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nasdepth.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive (an empty one: the second)
OBJECT_ARRAYS = ("arrays of numbers (this one holds Python objects, which are never unpickled; "
                 "save it with a numeric dtype)")


def _head(p: Path, source: str, what: str) -> bytes:
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ConfigError(source, "path", str(p), f"a readable {what} "
                          f"({exc.strerror or type(exc).__name__})") from None
    if not head:
        raise ConfigError(source, "path", str(p), f"a {what}; this file is empty (0 bytes)")
    return head


def load_numpy(p: Path, source: str) -> Any:
    """``np.load(p)`` without pickles: an array (``.npy``) or an ``NpzFile`` (``.npz``)."""
    head = _head(p, source, "NumPy file")
    if p.suffix.lower() == ".npz" and not head.startswith(ZIP_MAGIC):
        kind = "a .npy array" if head.startswith(NPY_MAGIC) else "no zip archive"
        raise ConfigError(source, "path", str(p), "a .npz file (a zip archive of .npy arrays, "
                          f"as np.savez writes it); this file is {kind}")
    if p.suffix.lower() == ".npy" and not head.startswith(NPY_MAGIC):
        raise ConfigError(source, "path", str(p), "a .npy file as np.save writes it (it starts "
                          "with \\x93NUMPY); this file does not")
    try:
        return np.load(p, allow_pickle=False)
    except Exception as exc:  # also a damaged zip member (BadZipFile), a cut header ...
        if isinstance(exc, ValueError) and ("allow_pickle" in str(exc)
                                            or "Object arrays" in str(exc)):
            raise ConfigError(source, "data", str(p), OBJECT_ARRAYS) from None
        text = str(exc) if isinstance(exc, (ValueError, OSError, EOFError)) else str(exc)[:200]
        raise ConfigError(source, "path", str(p), f"a NumPy file NumPy can read "
                          f"({type(exc).__name__}: {text})") from None


def read_table(p: Path, source: str, sep: str = ",") -> pd.DataFrame:
    """A CSV file as a ``DataFrame``: UTF-8, a header and at least one row."""
    import pandas as pd

    data = _head(p, source, "CSV file") and p.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(source, "path", str(p),
                          f"a UTF-8 CSV file; byte {exc.start} (line {line}: "
                          f"{data[exc.start:exc.start + 1]!r}) is not UTF-8 (Latin-1 or "
                          "Windows text?): save it as UTF-8") from None
    try:
        df = pd.read_csv(p, sep=sep, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise ConfigError(source, "path", str(p),
                          "a CSV file with a header and rows; it holds no columns") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise ConfigError(source, "path", str(p),
                          f"a readable CSV file ({' '.join(str(exc).split())[:200]})") from None
    if df.empty:
        raise ConfigError(source, "path", str(p),
                          f"a CSV file with rows; it has the header {list(df.columns)[:8]} "
                          "and no rows")
    return df


def table_features(df: pd.DataFrame, categorical: list[str], source: str) -> np.ndarray:
    """A table's feature columns as float32 numbers: ``categorical`` and every other text
    column one-hot encoded, missing values refused (``load_data`` and ``predict``)."""
    import pandas as pd

    text = [c for c in df.columns if df[c].dtype == object and c not in categorical]
    features = pd.get_dummies(df, columns=categorical + text, dtype=np.float32)
    missing = features.columns[features.isna().any()].tolist()
    if missing:
        raise ConfigError(source, "features", f"missing values in columns {missing}",
                          "complete (impute or drop those columns first)")
    try:
        return features.to_numpy(dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ConfigError(source, "features", str(exc), "numbers") from None
