"""core.metrics: counted in process memory, added to prometheus_client's multiprocess files by `flush`."""

from __future__ import annotations

import multiprocessing
import os
import uuid

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from core import metrics
from tests.support import metric_value


def _exposition() -> str:
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return generate_latest(registry).decode()


@pytest.fixture(autouse=True)
def _multiprocess_mode() -> None:
    # The settings point every process at var/prometheus; these tests read the files as /metrics does.
    assert os.environ.get(metrics.MULTIPROCESS_ENV), "the settings set PROMETHEUS_MULTIPROC_DIR"


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def test_a_count_stays_in_memory_until_the_flush_adds_it_to_the_shared_files() -> None:
    counter = metrics.Counter(_name("test_served") + "_total", "test", ("experiment",))
    counter.inc("recs-ab")
    counter.inc("recs-ab", amount=2)
    counter.inc("other")
    total = counter.name
    assert metric_value(_exposition(), total, experiment="recs-ab") == 0
    metrics.flush()
    text = _exposition()
    assert metric_value(text, total, experiment="recs-ab") == 3
    assert metric_value(text, total, experiment="other") == 1
    counter.inc("recs-ab")
    metrics.flush()
    assert metric_value(_exposition(), total, experiment="recs-ab") == 4


def test_a_histogram_batch_lands_in_the_same_buckets_and_sum_as_prometheus_observe() -> None:
    histogram = metrics.Histogram(_name("test_seconds"), "test", ("view",), buckets=(0.001, 0.005, 10))
    for value in (0.0005, 0.001, 0.003, 0.003, 7, 20):  # 0.001 is in le="0.001": upper bounds are inclusive
        histogram.observe(value, "events")
    metrics.flush()
    text = _exposition()
    buckets = {le: metric_value(text, f"{histogram.name}_bucket", view="events", le=le)
               for le in ("0.001", "0.005", "10.0", "+Inf")}  # fmt: skip
    assert buckets == {"0.001": 2, "0.005": 4, "10.0": 5, "+Inf": 6}
    assert metric_value(text, f"{histogram.name}_count", view="events") == 6
    assert metric_value(text, f"{histogram.name}_sum", view="events") == pytest.approx(27.0075)


def _count_in_child(counter: metrics.Counter) -> None:
    counter.inc("child")
    metrics.flush()


def test_a_forked_process_does_not_count_what_its_parent_had_not_flushed() -> None:
    counter = metrics.Counter(_name("test_forked") + "_total", "test", ("who",))
    counter.inc("parent", amount=3)  # not flushed when the child is forked
    child = multiprocessing.get_context("fork").Process(target=_count_in_child, args=(counter,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    metrics.flush()
    text = _exposition()
    assert (metric_value(text, counter.name, who="parent"), metric_value(text, counter.name, who="child")) == (3, 1)


def test_http_methods_outside_the_known_ones_share_one_label_value() -> None:
    assert [metrics.http_method(m) for m in ("GET", "POST", "PROPFIND", "get")] == ["GET", "POST", "other", "other"]
