"""The result store of a sweep: verified chunk files in one locked folder.

Layout of an output folder::

    sweep.json             the configuration and its fingerprint
    sweep.lock             the lock (``filelock``), held for the whole sweep
    sweep.lock.holder      who holds it: host, pid, start time
    chunks/gGGGG_rSTART-STOP.parquet         runs START..STOP-1 of group GGGG
    chunks/gGGGG_rSTART-STOP.curves.parquet  their curves (when recorded)
    log.txt                one line per computed or rejected chunk
    runs.parquet, curves.parquet, metadata.json   the final tables, at the end

Each chunk's Parquet metadata holds its slot (group, start, stop), the sweep's
fingerprint and a SHA-256 checksum of its columns; the runs chunk also holds the
checksum of its curves chunk and is written last, so it is the commit mark of both.
A chunk is accepted only if all of this matches its file name and content; anything
else (truncated, bit-flipped, copied from another slot, another sweep's, a symlink)
is deleted and recomputed. Every write goes to a fresh temporary file (``O_EXCL``,
so never through a symlink), is fsynced and renamed into place; temporaries left by
a killed run are deleted when the next one takes the lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import tempfile
import time
from pathlib import Path

import numpy as np

_CHUNK = re.compile(r"^g(\d{4,})_r(\d{9,})-(\d{9,})\.parquet$")
_OWN_NAMES = {
    "sweep.json",
    "sweep.lock",
    "sweep.lock.holder",
    "chunks",
    "log.txt",
    "runs.parquet",
    "curves.parquet",
    "metadata.json",
}


def content_checksum(frame) -> str:
    """SHA-256 of a DataFrame's column names, dtypes and values, in column order."""
    digest = hashlib.sha256()
    for name in frame.columns:
        values = np.ascontiguousarray(frame[name].to_numpy())
        digest.update(f"{name}\0{values.dtype.str}\0{values.shape}\0".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def atomic_write(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a fresh fsynced temporary and a rename.

    The temporary is created with ``O_EXCL`` (never through a symlink) and the
    rename replaces a symlink at ``path`` rather than writing through it.
    """
    fd, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _append(path: Path, line: str) -> None:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o644)
    with os.fdopen(fd, "a") as handle:
        handle.write(line + "\n")


def _stored_fingerprint(identity: Path, where: str) -> str:
    """The fingerprint in ``sweep.json``, or a ``ValueError`` naming file and fault."""
    try:
        stored = json.loads(identity.read_bytes().decode("utf-8"))
    except OSError as err:
        problem = f"unreadable: {err.strerror or err}"
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        problem = f"{type(err).__name__}: {err}"
    else:
        if not isinstance(stored, dict):
            problem = f"a JSON {type(stored).__name__}, not an object"
        elif not isinstance(stored.get("fingerprint"), str):
            problem = "no string 'fingerprint' field"
        else:
            return stored["fingerprint"]
    raise ValueError(
        f"{where}: {str(identity)!r} is corrupt ({problem}); delete the folder to "
        "start over or choose another"
    )


def check_out(out) -> Path:
    """``out`` as a Path, or a ValueError for an empty or non-path value."""
    if isinstance(out, str) and not out.strip():
        raise ValueError(f"`run_sweep(out=...)` must name a folder, got {out!r}")
    if not isinstance(out, str | os.PathLike):
        raise TypeError(f"`run_sweep(out=...)` must be a path or None, got {out!r}")
    return Path(out)


class Store:
    """One sweep's output folder, locked for as long as the object is open.

    Args:
        out: the folder (created if needed).
        fingerprint: the sweep's ``SweepConfig.fingerprint()``.
        config: the configuration as JSON-able data (written to ``sweep.json``).
        curves: whether chunks come with a curves file.

    Raises:
        ValueError: the folder is unusable (not a folder, not writable, a symlinked
            ``chunks``, a non-empty folder that holds no sweep), holds another
            sweep, or is locked by a running sweep (the message names its host and
            pid).
    """

    def __init__(self, out: Path, fingerprint: str, config: dict, curves: bool):
        import filelock

        self.out = out
        self.chunks = out / "chunks"
        self.fingerprint = fingerprint
        self.curves = curves
        where = f"sweep output folder {str(out)!r}"
        if out.exists() and not out.is_dir():
            raise ValueError(f"{where} is not writable: it is not a folder")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"{where} is not writable: {err}") from None
        if not os.access(out, os.W_OK | os.X_OK):
            raise ValueError(f"{where} is not writable")
        for name in sorted(_OWN_NAMES):
            if (out / name).is_symlink():
                raise ValueError(
                    f"{where}: {name!r} is a symlink; a sweep writes only real "
                    "files and folders of its own"
                )
        identity = out / "sweep.json"
        foreign = sorted(
            p.name
            for p in out.iterdir()
            if p.name not in _OWN_NAMES and not p.name.endswith(".tmp")
        )
        if foreign and not identity.exists():
            raise ValueError(
                f"{where} is not empty and holds no sweep (found {foreign[:3]}); "
                "choose an empty or new folder"
            )
        self._lock = filelock.FileLock(out / "sweep.lock", timeout=0)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise ValueError(
                f"{where} is in use by another sweep ({self._holder()}); wait for it "
                "to finish or choose another folder"
            ) from None
        except OSError as err:
            raise ValueError(f"{where} is not writable: {err}") from None
        # The lock guards this folder only while it is this folder: deleted or
        # replaced under a running sweep, another sweep could lock the new one.
        self._identity = (out.stat().st_dev, out.stat().st_ino)
        try:
            # Holding the lock: any temporary file is a killed run's leftover.
            for leftover in [*out.glob(".*.tmp"), *self.chunks.glob(".*.tmp")]:
                leftover.unlink(missing_ok=True)
            atomic_write(
                out / "sweep.lock.holder",
                json.dumps(
                    {
                        "host": socket.gethostname(),
                        "pid": os.getpid(),
                        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    }
                ).encode(),
            )
            self._check_identity(identity, config, where)
            self.chunks.mkdir(exist_ok=True)
            if self.chunks.is_symlink() or not self.chunks.is_dir():
                raise ValueError(f"{where}: 'chunks' is not a folder")
        except BaseException:
            self.close()
            raise

    def _holder(self) -> str:
        try:
            holder = json.loads((self.out / "sweep.lock.holder").read_text())
            return (
                f"host {holder['host']}, pid {holder['pid']}, since {holder['since']}"
            )
        except (OSError, ValueError, KeyError, TypeError):
            return "holder unknown"

    def _check_identity(self, identity: Path, config: dict, where: str) -> None:
        if identity.exists():
            stored = _stored_fingerprint(identity, where)
            if stored != self.fingerprint:
                raise ValueError(
                    f"{where} holds a different sweep (fingerprint {stored}, this "
                    f"one {self.fingerprint}); results are not mixed: choose another "
                    "folder or delete it"
                )
        else:
            payload = {"fingerprint": self.fingerprint, "config": config}
            atomic_write(identity, json.dumps(payload, indent=2).encode())

    def close(self) -> None:
        """Release the lock (and remove the holder's name if the folder is ours)."""
        try:
            self._check_still_ours()
            (self.out / "sweep.lock.holder").unlink(missing_ok=True)
        except (RuntimeError, AttributeError):
            pass
        finally:
            self._lock.release()

    def __enter__(self):  # noqa: D105
        return self

    def __exit__(self, *exc):  # noqa: D105
        self.close()

    def log(self, line: str) -> None:
        """Append one line to ``log.txt``."""
        _append(self.out / "log.txt", line)

    def chunk_path(self, group: int, start: int, stop: int) -> Path:
        """The runs chunk of runs ``start..stop-1`` of ``group``."""
        return self.chunks / f"g{group:04d}_r{start:09d}-{stop:09d}.parquet"

    @staticmethod
    def curves_path(path: Path) -> Path:
        """The curves chunk that belongs to a runs chunk."""
        return path.with_name(path.name.removesuffix(".parquet") + ".curves.parquet")

    def _encode(self, frame, slot: tuple[int, int, int], extra: dict) -> bytes:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        group, start, stop = slot
        metadata = {
            **(table.schema.metadata or {}),
            b"fingerprint": self.fingerprint.encode(),
            b"slot": f"{group},{start},{stop}".encode(),
            b"checksum": content_checksum(frame).encode(),
            **{k.encode(): v.encode() for k, v in extra.items()},
        }
        sink = pa.BufferOutputStream()
        pq.write_table(table.replace_schema_metadata(metadata), sink)
        return sink.getvalue().to_pybytes()

    def _check_still_ours(self) -> None:
        try:
            stat = self.out.stat()
            same = (stat.st_dev, stat.st_ino) == self._identity
        except OSError:
            same = False
        if not same:
            raise RuntimeError(
                f"sweep output folder {str(self.out)!r} was deleted or replaced while "
                "this sweep ran; nothing more is written to it"
            )

    def write(self, group: int, start: int, stop: int, runs, curves) -> None:
        """Persist one chunk (curves first; the runs chunk commits both).

        Raises:
            RuntimeError: the folder was deleted or replaced since it was locked.
        """
        self._check_still_ours()
        path = self.chunk_path(group, start, stop)
        slot = (group, start, stop)
        extra = {}
        if curves is not None:
            atomic_write(self.curves_path(path), self._encode(curves, slot, {}))
            extra["curves_checksum"] = content_checksum(curves)
        atomic_write(path, self._encode(runs, slot, extra))
        self.log(f"computed group {group} runs {start}-{stop}")

    def _read_verified(self, path: Path, slot: tuple[int, int, int], expected=None):
        """The chunk's DataFrame, or the reason it is rejected."""
        import pyarrow.parquet as pq

        if path.is_symlink() or not path.is_file():
            return None, "not a regular file"
        try:
            table = pq.read_table(path)
            metadata = table.schema.metadata or {}
            frame = table.to_pandas()
        except Exception as err:  # noqa: BLE001 - any unreadable file is recomputed
            return None, f"unreadable ({type(err).__name__})"
        group, start, stop = slot
        if metadata.get(b"fingerprint", b"").decode() != self.fingerprint:
            return None, "another sweep's fingerprint"
        if metadata.get(b"slot", b"").decode() != f"{group},{start},{stop}":
            return None, "written for another slot"
        checksum = content_checksum(frame)
        if metadata.get(b"checksum", b"").decode() != checksum:
            return None, "checksum mismatch"
        if expected is not None and expected != checksum:
            return None, "checksum differs from the one its runs chunk recorded"
        runs = np.unique(frame["run"].to_numpy()) if "run" in frame else None
        if (
            runs is None
            or not np.array_equal(runs, np.arange(start, stop))
            or not np.all(frame["group"].to_numpy() == group)
        ):
            return None, "its rows are not the slot's runs"
        if expected is None and len(frame) != stop - start:
            return None, "wrong number of rows"
        return (frame, metadata), None

    def _read_chunk(self, path: Path, slot):
        """(runs, curves) of a verified chunk, or (None, reason)."""
        checked, reason = self._read_verified(path, slot)
        if checked is None:
            return None, reason
        runs, metadata = checked
        curves = None
        if self.curves:
            recorded = metadata.get(b"curves_checksum", b"").decode()
            if not recorded:
                return None, "its curves are missing"
            checked, reason = self._read_verified(
                self.curves_path(path), slot, expected=recorded
            )
            if checked is None:
                return None, f"its curves chunk: {reason}"
            curves = checked[0]
        return (runs, curves), None

    def finished(self, group: int, total: int) -> list[tuple[int, int]]:
        """Verified finished chunks of a group; every other file is removed.

        A chunk is kept when its name, slot, fingerprint, checksum and rows agree,
        its curves (if recorded) verify, and it overlaps no chunk kept before it.
        """
        kept: list[tuple[int, int]] = []
        covered = 0
        for path in sorted(self.chunks.glob(f"g{group:04d}_r*.parquet")):
            if path.name.endswith(".curves.parquet"):
                continue
            match = _CHUNK.match(path.name)
            reason = None
            if match is None or int(match[1]) != group:
                reason = "not a chunk name"
            else:
                start, stop = int(match[2]), int(match[3])
                if not 0 <= start < stop <= total:
                    reason = f"range {start}-{stop} outside 0-{total}"
                elif start < covered:
                    reason = "overlaps another chunk"
                else:
                    _, reason = self._read_chunk(path, (group, start, stop))
            if reason is None:
                kept.append((start, stop))
                covered = stop
            else:
                self.log(f"rejected {path.name}: {reason}")
                path.unlink(missing_ok=True)
                self.curves_path(path).unlink(missing_ok=True)
        # Curves chunks without a committed runs chunk are a killed run's leftovers.
        committed = {self.curves_path(self.chunk_path(group, *r)) for r in kept}
        for path in self.chunks.glob(f"g{group:04d}_r*.curves.parquet"):
            if path not in committed:
                path.unlink(missing_ok=True)
        return kept

    def read_group(self, group: int, ranges: list[tuple[int, int]]):
        """The verified runs and curves frames of ``ranges``, re-checked on read.

        Raises:
            RuntimeError: a chunk no longer verifies (changed during the sweep).
        """
        runs, curves = [], []
        for start, stop in ranges:
            path = self.chunk_path(group, start, stop)
            checked, reason = self._read_chunk(path, (group, start, stop))
            if checked is None:
                raise RuntimeError(
                    f"chunk {path} changed during the sweep ({reason}); run the "
                    "sweep again to recompute it"
                )
            runs.append(checked[0])
            if checked[1] is not None:
                curves.append(checked[1])
        return runs, curves

    def write_final(self, runs, curves) -> None:
        """Write the checked final tables ``runs.parquet`` and ``curves.parquet``."""
        self._check_still_ours()
        import pyarrow as pa
        import pyarrow.parquet as pq

        for name, frame in (("runs", runs), ("curves", curves)):
            if frame is None:
                continue
            sink = pa.BufferOutputStream()
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
            atomic_write(self.out / f"{name}.parquet", sink.getvalue().to_pybytes())
