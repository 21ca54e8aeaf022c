"""A generic interactions CSV, plus an optional items CSV, with a column mapping.

Interaction columns are mapped with keys user, item, timestamp (required) and event,
value, session (optional): e.g. `user=customer,item=sku,timestamp=ts,event=type`.
Without an event column every row gets `default_event`. Timestamps are epoch seconds,
ISO 8601, or the strptime `timestamp_format` given; naive times are read in `time_zone`.
Item columns are mapped with keys id (required), title, description, category, price;
every other column of the items file is kept in the item's attributes. Without an items
file the catalogue is the set of items the interactions name (titles left empty); with
one, an interaction naming an item it lacks is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from recommenders.importers.parsed import (
    EVENT_TYPES,
    ImportFailed,
    ParsedDataset,
    ParsedInteractions,
    ParsedItem,
    ProgressCallback,
    header_positions,
    open_csv,
)

INTERACTION_KEYS = ("user", "item", "timestamp", "event", "value", "session")
ITEM_KEYS = ("id", "title", "description", "category", "price")


class MappingError(ValueError):
    """A column mapping given on the command line is malformed."""


def parse_mapping(spec: str, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict[str, str]:
    """Parse 'key=column,key=column' into a dict, checking keys against `allowed` and `required`."""
    mapping: dict[str, str] = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        key, sep, column = part.partition("=")
        key, column = key.strip(), column.strip()
        if not sep or not key or not column:
            raise MappingError(f"{part!r} is not of the form key=column")
        if key not in allowed:
            raise MappingError(f"unknown key {key!r}; use {', '.join(allowed)}")
        mapping[key] = column
    missing = [key for key in required if key not in mapping]
    if missing:
        raise MappingError(f"the mapping lacks {', '.join(missing)} (required: {', '.join(required)})")
    return mapping


@dataclass(frozen=True)
class CsvOptions:
    columns: Mapping[str, str] = field(
        default_factory=lambda: {"user": "user", "item": "item", "timestamp": "timestamp"}
    )
    item_columns: Mapping[str, str] = field(default_factory=lambda: {"id": "id"})
    default_event: str = "purchase"
    timestamp_format: str | None = None
    time_zone: str = "UTC"
    delimiter: str = ","
    encoding: str = "utf-8"


def parse_generic_csv(
    path: Path, items_path: Path | None, options: CsvOptions, progress: ProgressCallback | None = None
) -> ParsedDataset:
    if options.default_event not in EVENT_TYPES:
        raise ImportFailed(path, None, f"event type {options.default_event!r} is unknown; use {', '.join(EVENT_TYPES)}")
    try:
        zone = ZoneInfo(options.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImportFailed(
            path, None, f"time zone {options.time_zone!r} is unknown (e.g. UTC, Europe/London)"
        ) from None
    items = _parse_items(items_path, options) if items_path is not None else None
    rows = open_csv(path, encoding=options.encoding, delimiter=options.delimiter, progress=progress)
    try:
        _, header = next(rows)
    except StopIteration:
        raise ImportFailed(path, 1, "the file is empty; expected a header row") from None
    cols = options.columns
    pos = header_positions(path, header, [cols[k] for k in INTERACTION_KEYS if k in cols])
    i_user, i_item, i_time = pos[cols["user"]], pos[cols["item"]], pos[cols["timestamp"]]
    i_event = pos[cols["event"]] if "event" in cols else None
    i_value = pos[cols["value"]] if "value" in cols else None
    i_session = pos[cols["session"]] if "session" in cols else None
    interactions = ParsedInteractions()
    seen_items: dict[str, None] = {}
    for line, fields in rows:
        if not fields:
            continue
        if len(fields) != len(header):
            raise ImportFailed(path, line, f"expected {len(header)} fields, found {len(fields)}")
        user, item = fields[i_user].strip(), fields[i_item].strip()
        if not user:
            raise ImportFailed(path, line, f"column {cols['user']!r} (user) is empty")
        if not item:
            raise ImportFailed(path, line, f"column {cols['item']!r} (item) is empty")
        if items is not None and item not in items:
            raise ImportFailed(path, line, f"unknown item {item!r}: it is not in {items_path}")
        event = fields[i_event].strip() if i_event is not None else options.default_event
        if event not in EVENT_TYPES:
            raise ImportFailed(path, line, f"event type {event!r} is unknown; use {', '.join(EVENT_TYPES)}")
        value = 1.0
        if i_value is not None and fields[i_value].strip():
            try:
                value = float(fields[i_value])
            except ValueError:
                raise ImportFailed(
                    path, line, f"column {cols['value']!r} (value) {fields[i_value]!r} is not a number"
                ) from None
        when = _parse_time(path, line, fields[i_time], options.timestamp_format, zone)
        seen_items.setdefault(item)
        interactions.append(user, item, event, value, when, fields[i_session].strip() if i_session is not None else "")
    if not interactions:
        raise ImportFailed(path, None, "no interactions found below the header")
    catalogue = list(items.values()) if items is not None else [ParsedItem(external_id=i) for i in seen_items]
    report = {"rows_read": len(interactions), "rows_kept": len(interactions), "dropped": {}}
    return ParsedDataset("csv", str(path), catalogue, interactions, report)


def _parse_items(path: Path, options: CsvOptions) -> dict[str, ParsedItem]:
    rows = open_csv(path, encoding=options.encoding, delimiter=options.delimiter)
    try:
        _, header = next(rows)
    except StopIteration:
        raise ImportFailed(path, 1, "the items file is empty; expected a header row") from None
    cols = options.item_columns
    pos = header_positions(path, header, [cols[k] for k in ITEM_KEYS if k in cols])
    mapped = {pos[cols[k]] for k in cols}
    extra = [(i, name.strip()) for i, name in enumerate(header) if i not in mapped]
    items: dict[str, ParsedItem] = {}
    for line, fields in rows:
        if not fields:
            continue
        if len(fields) != len(header):
            raise ImportFailed(path, line, f"expected {len(header)} fields, found {len(fields)}")
        item_id = fields[pos[cols["id"]]].strip()
        if not item_id:
            raise ImportFailed(path, line, f"column {cols['id']!r} (id) is empty")
        if item_id in items:
            raise ImportFailed(path, line, f"item {item_id!r} appears twice")
        price = None
        if "price" in cols and fields[pos[cols["price"]]].strip():
            try:
                price = float(fields[pos[cols["price"]]])
            except ValueError:
                raise ImportFailed(path, line, f"price {fields[pos[cols['price']]]!r} is not a number") from None
            if price < 0:
                raise ImportFailed(path, line, f"price {price} is negative")

        def text(key: str, fields: list[str] = fields) -> str:
            return fields[pos[cols[key]]].strip() if key in cols else ""

        items[item_id] = ParsedItem(
            external_id=item_id,
            title=text("title"),
            description=text("description"),
            category=text("category"),
            price=price,
            attributes={name: fields[i] for i, name in extra},
        )
    return items


def _parse_time(path: Path, line: int, raw: str, fmt: str | None, zone: ZoneInfo) -> datetime:
    raw = raw.strip()
    try:
        if fmt is not None:
            value = datetime.strptime(raw, fmt)
        elif raw.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(raw), tz=UTC)
        else:
            value = datetime.fromisoformat(raw)
    except (ValueError, OverflowError, OSError):
        expected = f"the format {fmt!r}" if fmt else "epoch seconds or ISO 8601, e.g. 2011-12-09T12:50:00"
        raise ImportFailed(path, line, f"timestamp {raw!r} is not a date ({expected})") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)
