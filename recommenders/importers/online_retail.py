"""The UCI Online Retail file (Chen 2015, CC BY 4.0): one row per invoice line.

Kept: purchases, i.e. rows of a non-cancelled invoice with a positive quantity and a
customer. Each customer's Country (as on their first kept row; a handful of customers name two)
becomes their `country` user attribute. Each kept row becomes one `purchase` interaction (value = quantity, session =
invoice number). Dropped rows are counted in the report by the first reason that applies,
in this order: cancellation (InvoiceNo starting with "C"), no CustomerID, quantity <= 0.
Items are the stock codes that keep at least one purchase; a code's title is its most
frequent description and its price the median unit price of its kept rows. StockCode stays
text ("85123A", "POST"). InvoiceDate is naive local time of the UK shop (Europe/London).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from recommenders.importers.parsed import (
    ImportFailed,
    ParsedDataset,
    ParsedInteractions,
    ParsedItem,
    ProgressCallback,
    header_positions,
    most_common,
    open_csv,
)

COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country")
SHOP_TIME_ZONE = ZoneInfo("Europe/London")


def parse_online_retail(path: Path, progress: ProgressCallback | None = None) -> ParsedDataset:
    interactions = ParsedInteractions()
    descriptions: dict[str, Counter[str]] = defaultdict(Counter)
    prices: dict[str, list[float]] = defaultdict(list)
    countries: dict[str, str] = {}
    dates: dict[str, datetime] = {}  # an invoice's lines share one timestamp: parse each once
    dropped = Counter[str]()
    rows = 0
    rows_iter = open_csv(path, progress=progress)
    try:
        _, header = next(rows_iter)
    except StopIteration:
        raise ImportFailed(path, 1, "the file is empty; expected a header with " + ", ".join(COLUMNS)) from None
    col = header_positions(path, header, COLUMNS)
    i_invoice, i_code, i_desc, i_qty = col["InvoiceNo"], col["StockCode"], col["Description"], col["Quantity"]
    i_date, i_price, i_customer, i_country = col["InvoiceDate"], col["UnitPrice"], col["CustomerID"], col["Country"]
    width = len(header)

    for line, fields in rows_iter:
        if not fields:
            continue
        if len(fields) != width:
            raise ImportFailed(path, line, f"expected {width} fields, found {len(fields)}")
        rows += 1
        invoice = fields[i_invoice].strip()
        quantity = _parse_int(path, line, "Quantity", fields[i_qty])
        price = _parse_float(path, line, "UnitPrice", fields[i_price])
        raw_date = fields[i_date]
        timestamp = dates.get(raw_date)
        if timestamp is None:
            timestamp = _parse_date(path, line, raw_date)
            dates[raw_date] = timestamp
        customer = fields[i_customer].strip()
        if invoice.startswith("C"):
            dropped["cancellation"] += 1
            continue
        if not customer:
            dropped["no_customer"] += 1
            continue
        if quantity <= 0:
            dropped["non_positive_quantity"] += 1
            continue
        customer = _parse_customer(path, line, customer)
        code = fields[i_code].strip()
        if not code:
            raise ImportFailed(path, line, "StockCode is empty")
        description = fields[i_desc].strip()
        if description:
            descriptions[code][description] += 1
        prices[code].append(price)
        countries.setdefault(customer, fields[i_country].strip())
        interactions.append(customer, code, "purchase", float(quantity), timestamp, invoice)

    if not interactions:
        raise ImportFailed(path, None, "no purchases left after dropping cancellations, returns and anonymous rows")
    items = [
        ParsedItem(
            external_id=code,
            title=most_common(descriptions[code]),
            description=" / ".join(sorted(set(descriptions[code]) - {most_common(descriptions[code])})),
            price=round(statistics.median(code_prices), 3),
            attributes={"unit_price_min": min(code_prices), "unit_price_max": max(code_prices)},
        )
        for code, code_prices in sorted(prices.items())
    ]
    report = {
        "rows_read": rows,
        "rows_kept": len(interactions),
        "dropped": {
            "cancellation": dropped["cancellation"],
            "no_customer": dropped["no_customer"],
            "non_positive_quantity": dropped["non_positive_quantity"],
        },
        "customers_by_country": dict(Counter(countries.values()).most_common()),
    }
    # Stored per customer (UserAttribute "country") for results broken down by country.
    user_attributes = {"country": {customer: country for customer, country in countries.items() if country}}
    return ParsedDataset("online-retail", str(path), items, interactions, report, user_attributes)


def _parse_int(path: Path, line: int, column: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ImportFailed(path, line, f"{column} {raw!r} is not a whole number") from None


def _parse_float(path: Path, line: int, column: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ImportFailed(path, line, f"{column} {raw!r} is not a number") from None


def _parse_customer(path: Path, line: int, raw: str) -> str:
    # Spreadsheet exports write the id as 12346.0; the id is the integer.
    try:
        number = float(raw)
    except ValueError:
        raise ImportFailed(path, line, f"CustomerID {raw!r} is not a number") from None
    if not number.is_integer():
        raise ImportFailed(path, line, f"CustomerID {raw!r} is not a whole number")
    return str(int(number))


def _parse_date(path: Path, line: int, raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        try:  # the UCI spreadsheet's own text form, e.g. 12/1/2010 8:26
            value = datetime.strptime(raw.strip(), "%m/%d/%Y %H:%M")
        except ValueError:
            raise ImportFailed(
                path, line, f"InvoiceDate {raw!r} is not a date (expected YYYY-MM-DD HH:MM:SS)"
            ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=SHOP_TIME_ZONE)
    return value
