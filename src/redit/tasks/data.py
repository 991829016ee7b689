"""Reading task data from a local JSONL/JSON/Parquet file or directory, or a Hugging Face dataset id."""

from __future__ import annotations

import json
from pathlib import Path

from datasets import Dataset

SUFFIXES = (".jsonl", ".json", ".parquet")


def read_rows(path_or_id: str, split: str = "train", hub_config: str | None = None) -> Dataset:
    """Rows of a local file, of ``<dir>/<split>.{jsonl,json,parquet}``, or of a Hub dataset (``id``/``id:config``)."""
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        candidates = [path / f"{split}{suffix}" for suffix in SUFFIXES]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise FileNotFoundError(
                f"no {split!r} split in {path}: expected one of {', '.join(c.name for c in candidates)}"
            )
        path = found
    if path.is_file():
        return _read_file(path)
    if _looks_local(path_or_id):
        raise FileNotFoundError(
            f"data file not found: {path_or_id} (give a .jsonl/.json/.parquet file, a folder, or a Hub id)"
        )
    return _read_hub(path_or_id, split, hub_config)


def _read_file(path: Path) -> Dataset:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return Dataset(pq.read_table(path))
    if path.suffix not in (".jsonl", ".json"):
        raise ValueError(f"unsupported data file {path}: use one of {', '.join(SUFFIXES)}")
    with path.open(encoding="utf-8") as handle:
        text = handle.read()
    if text.lstrip().startswith("["):
        return Dataset.from_list(json.loads(text))
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not a JSON object ({error.msg})") from None
    return Dataset.from_list(rows)


def _looks_local(path_or_id: str) -> bool:
    return path_or_id.startswith((".", "/", "~")) or path_or_id.endswith(SUFFIXES) or path_or_id.count("/") != 1


def _read_hub(dataset_id: str, split: str, hub_config: str | None) -> Dataset:
    from datasets import load_dataset

    name, _, config = dataset_id.partition(":")
    return load_dataset(name, config or hub_config, split=split)


def require_columns(rows: Dataset, columns: tuple[str, ...], source: str) -> None:
    """Raise a ``ValueError`` naming the missing columns and those present."""
    missing = [c for c in columns if c not in rows.column_names]
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {', '.join(missing)}; found {', '.join(rows.column_names) or 'none'}"
        )


def first(rows: Dataset, limit: int | None) -> Dataset:
    """The first ``limit`` rows (all when ``limit`` is ``None``)."""
    if limit is None or limit >= len(rows):
        return rows
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return rows.select(range(limit))
