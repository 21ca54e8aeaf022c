"""core.request_context: one id per request, the client's when sane, on every log line of the request."""

from __future__ import annotations

import logging
import uuid

import pytest

from core import request_context


@pytest.mark.parametrize(
    "incoming", ["5f0c2a9e-1234-4cde-9abc-0123456789ab", "abc", "Root=1-67891233:x/y+z@q_r.s", "x" * 128]
)
def test_a_sane_incoming_id_is_kept(incoming: str) -> None:
    assert request_context.request_id_from(incoming) == incoming


@pytest.mark.parametrize("incoming", [None, "", "has space", "x" * 129, "new\nline", 'quote"', "é"])
def test_anything_else_gets_a_new_uuid4(incoming: str | None) -> None:
    made = request_context.request_id_from(incoming)
    assert made != incoming
    assert uuid.UUID(made).version == 4
    assert str(uuid.UUID(made)) == made


def test_new_ids_are_uuid4_with_the_rfc_4122_variant_and_distinct() -> None:
    ids = {request_context.new_uuid4() for _ in range(1000)}
    assert len(ids) == 1000
    assert {(uuid.UUID(i).version, uuid.UUID(i).variant) for i in ids} == {(4, uuid.RFC_4122)}


def test_the_id_is_current_inside_the_request_only_and_on_its_log_records() -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(request_context.RequestIdFilter())
    logger = logging.getLogger("tests.request_context")
    logger.addHandler(handler)
    try:
        assert request_context.current() is None
        with request_context.bound("req-1"):
            assert request_context.current() == "req-1"
            logger.warning("inside")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    assert [(r.getMessage(), r.request_id) for r in records] == [("inside", "req-1"), ("outside", "-")]  # type: ignore[attr-defined]
