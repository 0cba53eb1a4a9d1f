"""The evaluation cache: network costs on disk, content-addressed.

The key hashes everything a cost depends on: the model (the source file of its class, its module
structure, or a GraphModule's code, and its weights: no torch.export needed, so a hit costs
milliseconds), the quantization spec, the calibration data, the accelerator config (energy table
and clock included), the fidelity, and the source of the compiler and of the hardware model
(RTL, golden model, energy model). SQLite in WAL mode: several processes may read and write at
once; a write is one transaction, so a killed process leaves either the whole entry or none.
Each entry carries an HMAC under a key of this user's (`user_key`): an entry edited in the file,
or written by someone else into a shared cache, is a miss, never served.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import os
import sqlite3
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from hw.errors import CodesignError

ROOT = Path(__file__).resolve().parent.parent
LOCK_TIMEOUT_S = 60.0  # how long a process waits for another's write


@lru_cache(maxsize=1)
def tool_version() -> str:
    """Hash of the compiler's and the hardware model's sources."""
    h = hashlib.sha256()
    files = sorted([*(ROOT / "compiler").rglob("*.py"), *(ROOT / "hw").glob("*.py"),
                    *(ROOT / "codesign").glob("*.py"),  # the shape of what is stored
                    *(ROOT / "hw" / "rtl").glob("*"), *(ROOT / "hw" / "harness").glob("*")])
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def model_fingerprint(model: torch.nn.Module) -> str:
    """Hash of what defines a model's function: its code and structure, and its weights."""
    h = hashlib.sha256()
    if isinstance(model, torch.fx.GraphModule):
        h.update(model.code.encode())
    else:
        cls = type(model)
        h.update(f"{cls.__module__}.{cls.__qualname__}".encode())
        try:
            h.update(Path(inspect.getsourcefile(cls)).read_bytes())
        except (TypeError, OSError):  # defined interactively: its structure still counts
            pass
        h.update(repr(model).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def cache_key(model: torch.nn.Module, spec: dict, calibration: np.ndarray, config: dict,
              fidelity: str) -> str:
    h = hashlib.sha256(model_fingerprint(model).encode())
    for part in (spec, config, fidelity, tool_version()):
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(calibration, np.float32).tobytes())
    return h.hexdigest()


def tflite_key(path: Path, config: dict, fidelity: str) -> str:
    """The key of a TFLite model's evaluation: its file's bytes (they hold its quantization)."""
    try:
        h = hashlib.sha256(path.read_bytes())
    except OSError as exc:
        raise CodesignError(f"{path}: cannot read it ({exc.strerror})") from None
    for part in (config, fidelity, tool_version()):
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()


def default_path() -> Path:
    root = Path(os.environ.get("CODESIGN_CACHE", Path.home() / ".cache" / "codesign"))
    return root / "evaluations.sqlite"


class EvalCache:
    """Never the reason an evaluation is lost: a cache that cannot be opened, read or written
    says so once (naming its path) and the work goes on without it; a corrupt database is moved
    aside and a new one started; an entry that cannot be read counts as a miss."""

    def __init__(self, path: str | Path | None = None, warn=None):
        self.path = Path(path) if path else default_path()
        self.warn = warn or (lambda m: print(f"warning: {m}", file=sys.stderr, flush=True))
        self.db = None
        try:
            self.db = self._open()
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc) or "malformed" in str(exc):
                aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
                try:
                    self.path.replace(aside)
                    self.db = self._open()
                    self.warn(f"evaluation cache {self.path}: corrupt ({exc}); moved to {aside} "
                              f"and started anew")
                except (OSError, sqlite3.Error) as again:
                    self._disable(again)
            else:
                self._disable(exc)
        except OSError as exc:
            self._disable(exc)

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            db = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_S, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE IF NOT EXISTS costs (key TEXT PRIMARY KEY, "
                           "value TEXT NOT NULL, created REAL NOT NULL)")
                return db
            except sqlite3.OperationalError as exc:
                db.close()
                # Switching a new database to WAL answers "locked" at once, without waiting on
                # the busy timeout, while another process does the same: try again.
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            except sqlite3.Error:
                db.close()
                raise

    def _disable(self, exc: BaseException) -> None:
        self.db = None
        self.warn(f"evaluation cache {self.path}: cannot be used ({exc}); going on without it "
                  f"(--no-cache skips it, --cache PATH or CODESIGN_CACHE moves it)")

    def get(self, key: str) -> dict | None:
        if self.db is None:
            return None
        try:
            row = self.db.execute("SELECT value FROM costs WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            mac, _, text = row[0].partition("\n")
            if not hmac.compare_digest(mac, self._mac(key, text)):
                self.warn(f"evaluation cache {self.path}: an entry fails its check (edited, "
                          f"or written by another user's key); evaluating anew")
                return None
            value = json.loads(text)
        except (sqlite3.Error, ValueError, OSError) as exc:
            self.warn(f"evaluation cache {self.path}: entry unreadable ({exc}); evaluating anew")
            return None
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict) -> None:
        """Store, or say why not: the caller keeps `value` either way."""
        if self.db is None:
            return
        try:
            text = json.dumps(value)
            self.db.execute("INSERT OR REPLACE INTO costs VALUES (?, ?, ?)",
                            (key, f"{self._mac(key, text)}\n{text}", time.time()))
        except OSError as exc:  # the key file
            self._disable(exc)
        except sqlite3.Error as exc:  # full disk, read-only file, locked too long
            self._disable(exc)

    def _mac(self, key: str, text: str) -> str:
        """HMAC-SHA256 of an entry under this user's key (`key_path`): an entry someone else
        edited or wrote fails it."""
        return hmac.new(user_key(self.path.parent), f"{key}\n{text}".encode(),
                        hashlib.sha256).hexdigest()

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


KEY_FILE = "evaluations.key"


@lru_cache(maxsize=4)
def user_key(directory: Path) -> bytes:
    """32 random bytes in `directory`/evaluations.key, readable by this user only, made on
    first use. What it protects: entries of a cache file others can write (a shared or copied
    cache) are served only if this user's process wrote them; it is no defence against someone
    who can read this user's files."""
    path = directory / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        data = path.read_bytes()
        if len(data) < 32:
            raise OSError(f"{path}: a key file of {len(data)} bytes (remove it)") from None
        return data
    with os.fdopen(fd, "wb") as f:
        data = os.urandom(32)
        f.write(data)
    return data
