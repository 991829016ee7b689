"""Files written whole or not at all: temp file + fsync + rename, appends of whole fsynced lines, one-line OS errors.

Every file redit writes goes through here, so a crash, a kill or a full disk leaves either the old file or the new
one, never a truncated mix, and an environment error reaches the user as one line naming the path and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

# errno -> what the user should do about it
_ADVICE = {
    errno.ENOSPC: "no space left on the device: free some space or choose another location, then rerun",
    errno.EDQUOT: "disk quota exceeded: free some space or choose another location, then rerun",
    errno.EROFS: "read-only file system: choose a writable location",
    errno.EACCES: "permission denied: choose a location you can write to",
    errno.EPERM: "permission denied: choose a location you can write to",
    errno.ENOENT: "no such file or folder: create the parent folder first or fix the path",
    errno.EISDIR: "is a directory: give a file path",
    errno.ENOTDIR: "is a file, not a folder: fix the path",
}


def describe_os_error(error: OSError) -> str:
    """One line for an environment error: the path, what went wrong and what to do."""
    if error.errno is None:  # raised by redit with its own message
        return str(error)
    told = error.strerror or str(error)
    advice = _ADVICE.get(error.errno, told) if told == os.strerror(error.errno) else told
    return advice if error.filename is None else f"{error.filename}: {advice}"


def with_path(error: OSError, path: str | Path) -> OSError:
    """``error`` with ``path`` as its filename (``write()`` on a full disk names no file)."""
    if error.filename is not None:
        return error
    return type(error)(error.errno, error.strerror or str(error), str(path))


def fsync_dir(path: str | Path) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | Path) -> None:
    """fsync every file under ``root``, then every folder (deepest first)."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            with open(os.path.join(folder, name), "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(folder)


def check_writable(path: Path) -> None:
    """Refuse a folder to be written (or created) at ``path`` when its nearest existing folder cannot take it."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(existing))
    if not os.access(existing, os.W_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(existing))


def check_output_file(path: Path, overwrite: bool) -> None:
    """Refuse an output path that cannot take a file, before any work is done."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not path.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path.parent))
    if path.exists() and not overwrite:
        raise FileExistsError(f"output file {path} exists; pass --overwrite to replace it")
    check_writable(path.parent)


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A temp file next to ``path``; renamed onto ``path`` (after fsync) only if the block completes."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        if isinstance(error, OSError):
            raise with_path(error, path) from error
        raise
    fsync_dir(path.parent)


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` in one step."""
    with atomic_file(path, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)


def append_line(path: str | Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line, durable when this returns."""
    append_lines(path, [record])


def append_lines(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Append ``records`` as JSON lines in one write, durable when this returns (a crash leaves at most a torn last
    line, which :func:`read_jsonl` skips)."""
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(record) + "\n" for record in records))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        raise with_path(error, path) from error


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The JSON-object lines of ``path`` ([] if absent); a torn or non-object line (a crash mid-append) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def truncate_jsonl(path: str | Path, step: int) -> None:
    """Keep only the records up to ``step`` (rewritten atomically; nothing to do if ``path`` is absent)."""
    if Path(path).exists():
        kept = [r for r in read_jsonl(path) if isinstance(r.get("step"), int) and r["step"] <= step]
        write_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))
