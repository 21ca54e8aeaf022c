"""A static-files finder that serves Plotly's JavaScript bundle from the installed plotly package.

The dashboards need plotly.js; it ships inside the Python package (plotly/package_data), so
pages load it from our own server as ``static/plotly/plotly.min.js``, never from a CDN, and
its version always matches the installed package. Only that one file is exposed (the package
folder also holds a 5 MB widget bundle and sample data that pages never need).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

BUNDLE = "plotly/plotly.min.js"


def _package_data() -> Path | None:
    # find_spec locates the package without importing it (importing plotly costs start-up time).
    spec = importlib.util.find_spec("plotly")
    return Path(spec.origin).parent / "package_data" if spec and spec.origin else None


class PlotlyFinder(BaseFinder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        folder = _package_data()
        self.storage = FileSystemStorage(location=str(folder)) if folder else None
        self.storage_prefix = "plotly"

    def check(self, **kwargs: Any) -> list[Any]:
        return []

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> Any:  # str, or a list with find_all
        if path != BUNDLE or self.storage is None:
            return [] if find_all else ""
        found = self.storage.path("plotly.min.js")
        return [found] if find_all else found

    def list(self, ignore_patterns: Any) -> Iterator[tuple[str, FileSystemStorage]]:
        if self.storage is not None:
            # collectstatic copies it to STATIC_ROOT/plotly/plotly.min.js (storage.prefix gives the folder).
            self.storage.prefix = self.storage_prefix  # type: ignore[attr-defined]
            yield "plotly.min.js", self.storage
