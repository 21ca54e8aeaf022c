"""MovieLens (GroupLens): the 100K layout (u.data, u.item) and the newer CSV layout (ratings.csv, movies.csv).

PATH is the folder holding the files. Each rating becomes a `rating` interaction
(value = stars, timestamp = the epoch seconds, UTC). Items are the films: title, genres
as category ("Action|Comedy"), and for the CSV layout the users' tags (tags.csv, when
present) as description text. MovieLens may not be redistributed: read it where it lies.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from recommenders.importers.parsed import (
    ImportFailed,
    ParsedDataset,
    ParsedInteractions,
    ParsedItem,
    ProgressCallback,
    header_positions,
    open_csv,
)

GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def parse_movielens(path: Path, progress: ProgressCallback | None = None) -> ParsedDataset:
    if (path / "u.data").is_file():
        return _parse_100k(path, progress)
    if (path / "ratings.csv").is_file():
        return _parse_csv_layout(path, progress)
    raise ImportFailed(
        path, None, "not a MovieLens folder: expected u.data + u.item (100K) or ratings.csv + movies.csv"
    )


def _parse_100k(folder: Path, progress: ProgressCallback | None) -> ParsedDataset:
    item_path = folder / "u.item"
    items: dict[str, ParsedItem] = {}
    for line, fields in open_csv(item_path, encoding="latin-1", delimiter="|"):
        if not fields:
            continue
        if len(fields) != 5 + len(GENRES_100K):
            raise ImportFailed(item_path, line, f"expected {5 + len(GENRES_100K)} fields, found {len(fields)}")
        flags = fields[5:]
        if any(flag not in ("0", "1") for flag in flags):
            raise ImportFailed(item_path, line, "genre flags must be 0 or 1")
        genres = [genre for genre, flag in zip(GENRES_100K, flags, strict=True) if flag == "1"]
        movie_id = fields[0].strip()
        items[movie_id] = ParsedItem(
            external_id=movie_id,
            title=fields[1].strip(),
            category="|".join(genres),
            attributes={"release_date": fields[2], "imdb_url": fields[4], "genres": genres},
        )
    data_path = folder / "u.data"
    interactions = ParsedInteractions()
    for line, fields in open_csv(data_path, delimiter="\t", progress=progress):
        if not fields:
            continue
        if len(fields) != 4:
            raise ImportFailed(
                data_path, line, f"expected 4 tab-separated fields (user, item, rating, time), found {len(fields)}"
            )
        user, movie, rating, stamp = fields
        _add_rating(interactions, items, data_path, line, user, movie, rating, stamp)
    return _dataset(folder, items, interactions, layout="100k")


def _parse_csv_layout(folder: Path, progress: ProgressCallback | None) -> ParsedDataset:
    movies_path = folder / "movies.csv"
    rows = open_csv(movies_path)
    _, header = next(rows, (1, []))
    col = header_positions(movies_path, header, ("movieId", "title", "genres"))
    parsed: dict[str, tuple[str, list[str]]] = {}
    for _line, fields in rows:
        if not fields:
            continue
        genres = [g for g in fields[col["genres"]].split("|") if g and g != "(no genres listed)"]
        parsed[fields[col["movieId"]].strip()] = (fields[col["title"]].strip(), genres)
    tags: dict[str, list[str]] = defaultdict(list)
    tags_path = folder / "tags.csv"
    if tags_path.is_file():
        tag_rows = open_csv(tags_path)
        _, tag_header = next(tag_rows, (1, []))
        tcol = header_positions(tags_path, tag_header, ("movieId", "tag"))
        for _line, fields in tag_rows:
            if fields and fields[tcol["tag"]].strip() not in tags[fields[tcol["movieId"]].strip()]:
                tags[fields[tcol["movieId"]].strip()].append(fields[tcol["tag"]].strip())
    items = {
        movie_id: ParsedItem(
            external_id=movie_id,
            title=title,
            description=", ".join(tags.get(movie_id, [])),
            category="|".join(genres),
            attributes={"genres": genres},
        )
        for movie_id, (title, genres) in parsed.items()
    }
    ratings_path = folder / "ratings.csv"
    rating_rows = open_csv(ratings_path, progress=progress)
    _, rating_header = next(rating_rows, (1, []))
    rcol = header_positions(ratings_path, rating_header, ("userId", "movieId", "rating", "timestamp"))
    interactions = ParsedInteractions()
    for line, fields in rating_rows:
        if not fields:
            continue
        if len(fields) != len(rating_header):
            raise ImportFailed(ratings_path, line, f"expected {len(rating_header)} fields, found {len(fields)}")
        _add_rating(
            interactions, items, ratings_path, line,
            fields[rcol["userId"]], fields[rcol["movieId"]], fields[rcol["rating"]], fields[rcol["timestamp"]],
        )  # fmt: skip
    return _dataset(folder, items, interactions, layout="csv")


def _add_rating(
    interactions: ParsedInteractions,
    items: dict[str, ParsedItem],
    path: Path,
    line: int,
    user: str,
    movie: str,
    rating: str,
    stamp: str,
) -> None:
    movie = movie.strip()
    if movie not in items:
        raise ImportFailed(path, line, f"unknown item {movie!r}: it is not in the movies file")
    try:
        stars = float(rating)
    except ValueError:
        raise ImportFailed(path, line, f"rating {rating!r} is not a number") from None
    try:
        when = datetime.fromtimestamp(int(stamp), tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise ImportFailed(path, line, f"timestamp {stamp!r} is not a time in epoch seconds") from None
    interactions.append(user.strip(), movie, "rating", stars, when)


def _dataset(
    folder: Path, items: dict[str, ParsedItem], interactions: ParsedInteractions, layout: str
) -> ParsedDataset:
    if not interactions:
        raise ImportFailed(folder, None, "no ratings found")
    report = {"layout": layout, "rows_read": len(interactions), "rows_kept": len(interactions), "dropped": {}}
    return ParsedDataset("movielens", str(folder), list(items.values()), interactions, report)
