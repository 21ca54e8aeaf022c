"""import_dataset on real files: counts, and every malformed input refused with nothing written."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable
from pathlib import Path

import psycopg2
import pytest
from django.core.management import CommandError, call_command

from recommenders.importers.online_retail import parse_online_retail
from recommenders.models import Dataset, Interaction, Item, UserAttribute
from recommenders.services.datasets import delete_dataset, save_dataset
from tests.support import ML_100K, ML_LATEST_SMALL, ONLINE_RETAIL, shared_dataset

pytestmark = pytest.mark.django_db


def _import(*args: str) -> str:
    out = io.StringIO()
    call_command("import_dataset", *args, stdout=out)
    return out.getvalue()


def _assert_nothing_written() -> None:
    counts = (Dataset.objects.count(), Item.objects.count(), Interaction.objects.count(), UserAttribute.objects.count())
    assert counts == (0, 0, 0, 0)


def _countries(name: str) -> dict[str, str]:
    return dict(UserAttribute.objects.filter(dataset__name=name, name="country").values_list("user_id", "value"))


def _online_retail_lines(count: int) -> list[str]:
    """The header and the first `count` real rows of the bundled file."""
    with gzip.open(ONLINE_RETAIL, "rt", encoding="utf-8", newline="") as handle:
        return [next(handle) for _ in range(count + 1)]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.mark.slow
def test_online_retail_full_file_gives_the_recommender_view() -> None:
    output = _import("online-retail", str(ONLINE_RETAIL), "--name", "online-retail")

    dataset = Dataset.objects.get(name="online-retail")
    assert (dataset.user_count, dataset.item_count, dataset.interaction_count) == (4_339, 3_665, 397_924)
    assert Interaction.objects.filter(dataset=dataset).values("user_id").distinct().count() == 4_339
    assert Item.objects.filter(dataset=dataset).count() == 3_665
    assert dataset.import_report["rows_read"] == 541_909
    assert dataset.import_report["dropped"] == {
        "cancellation": 9_288,
        "no_customer": 134_697,
        "non_positive_quantity": 0,
    }
    assert "4,339 users x 3,665 items, 397,924 interactions" in output
    # StockCode stays text, with its letter suffix; the title is the shop's description.
    heart = Item.objects.get(dataset=dataset, external_id="85123A")
    assert heart.title == "WHITE HANGING HEART T-LIGHT HOLDER"
    first = Interaction.objects.filter(dataset=dataset, session_id="536365", item=heart).get()
    assert (first.user_id, first.event_type, first.value) == ("17850", "purchase", 6.0)
    assert first.timestamp.isoformat() == "2010-12-01T08:26:00+00:00"  # 08:26 in London in December = UTC
    # Every customer's country is stored; 12431 bought as Australia first and Belgium later: the first counts.
    countries = _countries("online-retail")
    assert len(countries) == 4_339
    assert sum(country == "United Kingdom" for country in countries.values()) == 3_921
    assert countries["12431"] == "Australia"
    assert dataset.import_report["customers_by_country"]["United Kingdom"] == 3_921


def test_online_retail_drops_and_counts_cancellations_and_anonymous_rows(tmp_path: Path) -> None:
    lines = _online_retail_lines(3)
    lines.append("C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527,United Kingdom\n")
    lines.append("536414,22139,,56,2010-12-01 11:52:00,0.0,,United Kingdom\n")
    lines.append("536415,22139,RETROSPOT TEA SET,-4,2010-12-01 11:52:00,4.95,14527,United Kingdom\n")
    _import("online-retail", str(_write(tmp_path / "or.csv", lines)), "--name", "tiny")

    dataset = Dataset.objects.get(name="tiny")
    assert dataset.interaction_count == 3
    assert dataset.import_report["dropped"] == {"cancellation": 1, "no_customer": 1, "non_positive_quantity": 1}


def test_online_retail_stores_each_customers_country(tmp_path: Path) -> None:
    _import("online-retail", str(_write(tmp_path / "or.csv", _online_retail_lines(200))), "--name", "shop")

    uk = ("13047", "13748", "14688", "15100", "15291", "15311", "16029", "16098", "16250", "17420", "17809", "17850",
          "18074")  # fmt: skip
    assert _countries("shop") == {"12431": "Australia", "12583": "France", **dict.fromkeys(uk, "United Kingdom")}
    assert Dataset.objects.get(name="shop").import_report["customers_by_country"] == {
        "United Kingdom": 13, "France": 1, "Australia": 1}  # fmt: skip

    _write(tmp_path / "or.csv", _online_retail_lines(5))  # invoice 536365 of customer 17850 only
    _import("online-retail", str(tmp_path / "or.csv"), "--name", "shop", "--replace")
    assert _countries("shop") == {"17850": "United Kingdom"}
    assert delete_dataset("shop")
    assert UserAttribute.objects.count() == 0


def test_user_attributes_are_written_in_the_import_transaction(tmp_path: Path) -> None:
    parsed = parse_online_retail(_write(tmp_path / "or.csv", _online_retail_lines(20)))
    parsed.user_attributes["country"]["x" * 101] = "Nowhere"  # longer than a user id may be: COPY fails last

    with pytest.raises(psycopg2.DataError, match="value too long"):
        save_dataset(parsed, "shop")

    _assert_nothing_written()  # the data set, items and interactions written before it are rolled back too


def test_a_name_in_use_is_refused_unless_replace(tmp_path: Path) -> None:
    path = str(_write(tmp_path / "or.csv", _online_retail_lines(5)))
    _import("online-retail", path, "--name", "shop")
    with pytest.raises(CommandError, match="A data set named 'shop' exists already; pass --replace"):
        _import("online-retail", path, "--name", "shop")

    _write(tmp_path / "or.csv", _online_retail_lines(8))
    _import("online-retail", path, "--name", "shop", "--replace")
    assert Dataset.objects.get(name="shop").interaction_count == 8
    assert Interaction.objects.count() == 8
    assert "nothing to do" in _import("online-retail", path, "--name", "shop", "--if-missing")


def test_replace_with_a_bad_file_keeps_the_old_data_set(tmp_path: Path) -> None:
    good = str(_write(tmp_path / "good.csv", _online_retail_lines(5)))
    _import("online-retail", good, "--name", "shop")
    bad = str(_write(tmp_path / "bad.csv", _with_field(_online_retail_lines(5), 4, QUANTITY, "six")))
    with pytest.raises(CommandError):
        _import("online-retail", bad, "--name", "shop", "--replace")
    assert Dataset.objects.get(name="shop").interaction_count == 5
    assert _countries("shop") == {"17850": "United Kingdom"}


def _with_field(lines: list[str], line: int, column: int, value: str) -> list[str]:
    """`lines` with field `column` of file line `line` (1 = header) set to `value`."""
    fields = next(csv.reader([lines[line - 1]]))
    fields[column] = value
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    return [*lines[: line - 1], buffer.getvalue(), *lines[line:]]


QUANTITY, INVOICE_DATE, UNIT_PRICE = 3, 4, 5


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda ls: [ls[0].replace(",Quantity", ""), *ls[1:]], r"bad\.csv, line 1: missing column\(s\) Quantity"),
        (lambda ls: _with_field(ls, 4, QUANTITY, "six"), r"bad\.csv, line 4: Quantity 'six' is not a whole number"),
        (lambda ls: _with_field(ls, 3, UNIT_PRICE, "2.55x"), r"bad\.csv, line 3: UnitPrice '2\.55x' is not a number"),
        (
            lambda ls: _with_field(ls, 6, INVOICE_DATE, "yesterday"),
            r"bad\.csv, line 6: InvoiceDate 'yesterday' is not a date",
        ),
        (
            lambda ls: [*ls[:2], ls[2].rstrip("\n") + ",extra\n", *ls[3:]],
            r"bad\.csv, line 3: expected 8 fields, found 9",
        ),
    ],
    ids=["missing-column", "quantity-not-a-number", "price-not-a-number", "date-not-a-date", "extra-field"],
)
def test_malformed_online_retail_is_refused_with_file_line_and_reason(
    tmp_path: Path, corrupt: Callable[[list[str]], list[str]], message: str
) -> None:
    path = _write(tmp_path / "bad.csv", corrupt(_online_retail_lines(8)))
    with pytest.raises(CommandError, match=message) as error:
        _import("online-retail", str(path), "--name", "bad")
    assert str(error.value).startswith("Nothing was imported.")
    _assert_nothing_written()


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"nope\.csv: no such file"):
        _import("online-retail", str(tmp_path / "nope.csv"), "--name", "x")
    _assert_nothing_written()


def test_an_invalid_name_is_refused() -> None:
    with pytest.raises(CommandError, match="use letters, digits, hyphens and underscores only"):
        _import("online-retail", str(ONLINE_RETAIL), "--name", "my shop!")


def test_movielens_100k_layout() -> None:
    path = shared_dataset(ML_100K)
    _import("movielens", str(path), "--name", "ml-100k")

    dataset = Dataset.objects.get(name="ml-100k")
    assert (dataset.user_count, dataset.item_count, dataset.interaction_count) == (943, 1_682, 100_000)
    toy_story = Item.objects.get(dataset=dataset, external_id="1")
    assert (toy_story.title, toy_story.category) == ("Toy Story (1995)", "Animation|Children's|Comedy")
    assert set(Interaction.objects.values_list("event_type", flat=True).distinct()) == {"rating"}
    assert Interaction.objects.filter(dataset=dataset, user_id="196", item__external_id="242").get().value == 3.0


def test_movielens_csv_layout_with_tags_as_text() -> None:
    path = shared_dataset(ML_LATEST_SMALL)
    _import("movielens", str(path), "--name", "ml-small")

    dataset = Dataset.objects.get(name="ml-small")
    assert (dataset.user_count, dataset.item_count, dataset.interaction_count) == (610, 9_742, 100_836)
    toy_story = Item.objects.get(dataset=dataset, external_id="1")
    assert toy_story.category == "Adventure|Animation|Children|Comedy|Fantasy"
    assert "pixar" in toy_story.description


def test_movielens_rating_of_an_unknown_film_is_refused(tmp_path: Path) -> None:
    source = shared_dataset(ML_100K)
    (tmp_path / "u.item").write_bytes((source / "u.item").read_bytes())
    (tmp_path / "u.data").write_text("196\t242\t3\t881250949\n186\t99999\t3\t891717742\n")
    with pytest.raises(CommandError, match=r"u\.data, line 2: unknown item '99999'"):
        _import("movielens", str(tmp_path), "--name", "ml")
    _assert_nothing_written()


def _shop_files(tmp_path: Path) -> tuple[Path, Path]:
    """A generic shop export made from real Online Retail rows, with the shop's own column names."""
    rows = list(csv.DictReader(_online_retail_lines(40)))
    events = tmp_path / "events.csv"
    with open(events, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer", "sku", "when", "kind", "qty", "order"])
        for row in rows:
            writer.writerow(
                [row["CustomerID"], row["StockCode"], row["InvoiceDate"], "purchase", row["Quantity"], row["InvoiceNo"]]
            )
    products = tmp_path / "products.csv"
    with open(products, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "name", "price", "colour"])
        for code in sorted({row["StockCode"] for row in rows}):
            first = next(r for r in rows if r["StockCode"] == code)
            writer.writerow(
                [code, first["Description"], first["UnitPrice"], "white" if "WHITE" in first["Description"] else ""]
            )
    return events, products


CSV_ARGS = ("--columns", "user=customer,item=sku,timestamp=when,event=kind,value=qty,session=order",
            "--item-columns", "id=sku,title=name,price=price", "--time-zone", "Europe/London")  # fmt: skip


def test_generic_csv_with_items_and_a_column_mapping(tmp_path: Path) -> None:
    events, products = _shop_files(tmp_path)
    _import("csv", str(events), "--items", str(products), "--name", "shop", *CSV_ARGS)

    dataset = Dataset.objects.get(name="shop")
    assert dataset.interaction_count == 40
    assert dataset.item_count == len(set(Item.objects.values_list("external_id", flat=True)))
    assert UserAttribute.objects.count() == 0  # a generic CSV says nothing about its users
    heart = Item.objects.get(dataset=dataset, external_id="85123A")
    assert (heart.title, str(heart.price), heart.attributes) == (
        "WHITE HANGING HEART T-LIGHT HOLDER",
        "2.550",
        {"colour": "white"},
    )


def test_generic_csv_without_items_file_builds_the_catalogue_from_events(tmp_path: Path) -> None:
    events, _ = _shop_files(tmp_path)
    _import("csv", str(events), "--name", "shop", "--columns", "user=customer,item=sku,timestamp=when")
    dataset = Dataset.objects.get(name="shop")
    assert dataset.item_count == Item.objects.filter(dataset=dataset).count() > 0
    assert set(Interaction.objects.values_list("event_type", flat=True)) == {"purchase"}


def test_generic_csv_unknown_item_is_refused(tmp_path: Path) -> None:
    events, products = _shop_files(tmp_path)
    lines = products.read_text().splitlines(keepends=True)
    products.write_text("".join(line for line in lines if not line.startswith("71053,")))
    line_of_71053 = 1 + next(i for i, line in enumerate(events.read_text().splitlines()) if ",71053," in line)
    with pytest.raises(CommandError, match=rf"events\.csv, line {line_of_71053}: unknown item '71053'"):
        _import("csv", str(events), "--items", str(products), "--name", "shop", *CSV_ARGS)
    _assert_nothing_written()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--columns", "user=customer,item=sku"), "the mapping lacks timestamp"),
        (("--columns", "user=customer,item=sku,timestamp=when,colour=x"), "unknown key 'colour'"),
        (("--columns", "user=customer,item=product,timestamp=when"), r"line 1: missing column\(s\) product"),
        (
            ("--columns", "user=customer,item=sku,timestamp=when,value=kind"),
            r"line 2: column 'kind' \(value\) 'purchase' is not a number",
        ),
        (
            ("--columns", "user=customer,item=sku,timestamp=qty", "--timestamp-format", "%Y"),
            r"line 2: timestamp '6' is not a date",
        ),
        (("--columns", "user=customer,item=sku,timestamp=when,event=order"), r"line 2: event type '536365' is unknown"),
    ],
    ids=["mapping-lacks-key", "mapping-unknown-key", "missing-column", "value-not-a-number", "bad-date", "bad-event"],
)
def test_generic_csv_bad_input_is_refused(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    events, _ = _shop_files(tmp_path)
    with pytest.raises(CommandError, match=message):
        _import("csv", str(events), "--name", "shop", *args)
    _assert_nothing_written()


def test_holdout_fraction_is_checked_and_reported(tmp_path: Path) -> None:
    path = str(_write(tmp_path / "or.csv", _online_retail_lines(20)))
    with pytest.raises(CommandError, match=r"--holdout-fraction 1\.5: use a number strictly between 0 and 1"):
        _import("online-retail", path, "--name", "shop", "--holdout-fraction", "1.5")
    assert "held out from 2010-12-01" in _import("online-retail", path, "--name", "shop", "--holdout-fraction", "0.2")
    assert Dataset.objects.get(name="shop").holdout_from is not None
