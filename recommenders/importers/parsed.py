"""What a parser returns, what it raises, and helpers every parser shares."""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "rating")

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes read so far, total bytes of the file) while a file is parsed."""


class ImportFailed(Exception):
    """A file cannot be imported. The message names the file, the line and the reason."""

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")
        self.path = str(path)
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class ParsedItem:
    external_id: str
    title: str = ""
    description: str = ""
    category: str = ""
    price: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class ParsedInteractions:
    """Interactions as parallel columns (cheaper than one object per row for 500,000 rows)."""

    user_id: list[str] = field(default_factory=list)
    item_id: list[str] = field(default_factory=list)
    event_type: list[str] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    timestamp: list[datetime] = field(default_factory=list)
    session_id: list[str] = field(default_factory=list)

    def append(
        self, user_id: str, item_id: str, event_type: str, value: float, timestamp: datetime, session_id: str = ""
    ) -> None:
        self.user_id.append(user_id)
        self.item_id.append(item_id)
        self.event_type.append(event_type)
        self.value.append(value)
        self.timestamp.append(timestamp)
        self.session_id.append(session_id)

    def __len__(self) -> int:
        return len(self.user_id)


@dataclass
class ParsedDataset:
    """A whole data set ready to load; `report` says what was read, kept and dropped (and why).

    `user_attributes`: facts about the users that the source knows, as {name: {user id: value}}
    (Online Retail: each customer's country); empty when the source has none.
    """

    source_format: str
    source_path: str
    items: list[ParsedItem]
    interactions: ParsedInteractions
    report: dict[str, Any] = field(default_factory=dict)
    user_attributes: dict[str, dict[str, str]] = field(default_factory=dict)

    def check_items_known(self, path: Path | str, first_line: int = 2) -> None:
        """Every interaction must name an item of the catalogue (only used where rows were not checked one by one)."""
        known = {item.external_id for item in self.items}
        for row, item_id in enumerate(self.interactions.item_id):
            if item_id not in known:
                raise ImportFailed(path, first_line + row, f"unknown item {item_id!r}: it is not in the items file")


class ProgressReader(io.RawIOBase):
    """Wraps a binary file and reports bytes read, so a gzip'd file shows progress in compressed bytes."""

    def __init__(self, raw: IO[bytes], total: int, progress: ProgressCallback | None) -> None:
        self._raw = raw
        self._total = total
        self._progress = progress
        self._done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._done += n
        if self._progress is not None and n:
            self._progress(self._done, self._total)
        return n


def open_csv(
    path: Path,
    *,
    encoding: str = "utf-8",
    delimiter: str = ",",
    progress: ProgressCallback | None = None,
) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) of a CSV file (gzip'd when the name ends in .gz); line 1 is the header."""
    if not path.is_file():
        raise ImportFailed(path, None, "no such file")
    total = path.stat().st_size
    with open(path, "rb") as raw_file:
        raw: IO[bytes] = io.BufferedReader(ProgressReader(raw_file, total, progress), buffer_size=1 << 20)
        if path.suffix == ".gz":
            raw = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
        text = io.TextIOWrapper(raw, encoding=encoding, newline="")
        reader = csv.reader(text, delimiter=delimiter)
        try:
            for fields in reader:
                yield reader.line_num, fields
        except UnicodeDecodeError as error:
            raise ImportFailed(path, reader.line_num + 1, f"not valid {encoding} text ({error.reason})") from None
        except (csv.Error, gzip.BadGzipFile, EOFError) as error:
            raise ImportFailed(path, reader.line_num, f"not a readable CSV file: {error}") from None


def header_positions(path: Path, header: Sequence[str], required: Sequence[str]) -> dict[str, int]:
    """Map column names to positions; a missing required column is refused with the columns found."""
    positions = {name.strip(): i for i, name in enumerate(header)}
    missing = [name for name in required if name not in positions]
    if missing:
        raise ImportFailed(
            path, 1, f"missing column(s) {', '.join(missing)}; the header has {', '.join(positions) or 'no columns'}"
        )
    return positions


def most_common(counter: Counter[str]) -> str:
    """The most frequent value; ties go to the alphabetically first, so imports are reproducible."""
    if not counter:
        return ""
    best = max(counter.values())
    return min(value for value, count in counter.items() if count == best)
