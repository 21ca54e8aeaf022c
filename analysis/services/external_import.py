"""Import a traffic log of an experiment run elsewhere, all or nothing.

Two readers produce ``LogRow``s, one writer stores them:

- ``read_traffic_csv(path)``: a CSV with a header naming the columns timestamp, user, arm,
  event_type (required) and item, position, propensity, revenue (optional; empty cells allowed).
- ``read_open_bandit(folder, campaign)``: the Open Bandit Dataset (ZOZOTOWN, Saito et al. 2021)
  files ``{random,bts}/{campaign}/{campaign}.csv`` as an A/B test of two policies: ``random``
  (uniform random, the control) against ``bts`` (Bernoulli Thompson sampling). The data has no
  user ids, only hashed user features, which are shared by many visitors (230 distinct tuples in
  10,000 rows), so they cannot stand for users. Each logged row is one impression shown to one
  independently randomised request, so the unit is the row: user id ``{policy}-{row index}``.
  Users then equal impressions, CTR = clicks / impressions and the delta-method CTR test reduces
  to Welch's test on 0/1 clicks per impression, which is the right test for this design. Every
  row emits an impression and, when click = 1, a click, both keeping item, position and propensity.

``import_traffic(rows, ...)`` creates the experiment if needed as an *imported* one (arms named
from the data, no variants, control from ``control`` or the first arm seen, status stopped,
started/stopped at the data's first and last timestamps), or adds to an existing imported one.
Each (experiment, user) gets an Exposure in their arm at their first event; a user seen in two
arms is refused with the line that shows it. Every row becomes an Event whose event_id is a hash
of (experiment key, source file, the row's content, its event type, and which repeat of identical
content it is), so importing the same file again stores nothing twice while two genuinely
identical lines of one log stay two events. Everything happens in one transaction that also holds
the experiment's RollupState lock (so a fold waits for the import); any bad row refuses the whole
import with its file, line and reason.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from analysis.services.rollups import lock_state
from experiments.models import Arm, Experiment, ExperimentChange
from serving.models import Event, Exposure
from serving.services.events import insert_events

REQUIRED_COLUMNS = ("timestamp", "user", "arm", "event_type")
OPTIONAL_COLUMNS = ("item", "position", "propensity", "revenue")
EVENT_TYPES = tuple(Event.Type.values)
OPEN_BANDIT_POLICIES = (("random", "random"), ("bts", "bts"))  # (folder, arm); the first is the control
OPEN_BANDIT_CAMPAIGNS = ("men", "women")
BATCH = 5000


class ImportRefused(Exception):
    """A bad file or row: nothing was stored. The message names the file and line."""

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        where = f"{source}, line {line}" if line is not None else source
        super().__init__(f"{where}: {reason}")
        self.source, self.line, self.reason = source, line, reason


@dataclass(frozen=True, slots=True)
class LogRow:
    source: str  # the file, as shown in messages and mixed into event ids
    line: int
    content: str  # the row's fields, joined; with source and event_type the identity of the event
    timestamp: datetime
    user: str
    arm: str
    event_type: str
    item: str = ""
    position: int | None = None
    propensity: float | None = None
    revenue: Decimal | None = None


@dataclass(frozen=True)
class ImportResult:
    experiment_id: int
    experiment_key: str
    created: bool
    rows: int
    stored: int
    duplicates: int
    new_users: int
    arms: list[str]
    exposures_moved: int  # existing exposures whose first event is earlier in the new data


# ---- readers -------------------------------------------------------------------------


def _timestamp(text: str) -> datetime:
    text = text.strip()
    try:
        when = datetime.fromtimestamp(float(text), tz=UTC)
    except (ValueError, OverflowError, OSError):
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"timestamp {text!r} is neither ISO 8601 nor epoch seconds") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _row(source: str, line: int, fields: dict[str, str], content: str) -> LogRow:
    def text(name: str, limit: int = 100) -> str:
        value = (fields.get(name) or "").strip()
        if len(value) > limit:
            raise ValueError(f"{name} is longer than {limit} characters")
        return value

    user, arm, kind = text("user"), text("arm", 50), text("event_type")
    if not user:
        raise ValueError("user is empty")
    if not arm or slugify(arm) != arm:
        raise ValueError(f"arm {arm!r} must be a slug (lower-case letters, digits, - and _)")
    if kind not in EVENT_TYPES:
        raise ValueError(f"event_type must be one of {', '.join(EVENT_TYPES)}, got {kind!r}")
    position = propensity = revenue = None
    if text("position"):
        if not text("position").isdigit() or not 1 <= int(text("position")) <= 1000:
            raise ValueError(f"position must be a whole number from 1 to 1000, got {text('position')!r}")
        position = int(text("position"))
    if text("propensity"):
        try:
            propensity = float(text("propensity"))
        except ValueError:
            raise ValueError(f"propensity {text('propensity')!r} is not a number") from None
        if not 0.0 < propensity <= 1.0:
            raise ValueError(f"propensity must be in (0, 1], got {propensity!r}")
    if text("revenue"):
        try:
            revenue = Decimal(text("revenue"))
        except InvalidOperation:
            raise ValueError(f"revenue {text('revenue')!r} is not a number") from None
        if not revenue.is_finite() or revenue < 0 or revenue >= Decimal("1e12"):
            raise ValueError(f"revenue must be a non-negative amount below 10^12, got {text('revenue')!r}")
        revenue = revenue.quantize(Decimal("0.01"))
    return LogRow(source=source, line=line, content=content, timestamp=_timestamp(text("timestamp")), user=user,
                  arm=arm, event_type=kind, item=text("item"), position=position, propensity=propensity,
                  revenue=revenue)  # fmt: skip


def read_traffic_csv(path: Path) -> Iterator[LogRow]:
    """Parse the generic traffic log; raises ImportRefused at the first bad line."""
    source = str(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as error:
        raise ImportRefused(source, None, f"cannot be read ({error.strerror})") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise ImportRefused(source, 1, "the file is empty (a header line is required)") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
        if missing or unknown:
            problems = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
                [f"unknown column(s) {', '.join(unknown)}"] if unknown else []
            )
            raise ImportRefused(
                source, 1, "; ".join(problems) + f" (columns: {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)})"
            )
        try:
            for values in reader:
                if not values or all(not v.strip() for v in values):
                    continue
                if len(values) != len(header):
                    raise ImportRefused(source, reader.line_num, f"{len(values)} fields, the header has {len(header)}")
                try:
                    yield _row(source, reader.line_num, dict(zip(header, values, strict=True)), "\x1f".join(values))
                except ValueError as error:
                    raise ImportRefused(source, reader.line_num, str(error)) from None
        except (csv.Error, UnicodeDecodeError) as error:
            raise ImportRefused(source, reader.line_num, f"not readable as UTF-8 CSV ({error})") from None


def read_open_bandit(folder: Path, campaign: str) -> Iterator[LogRow]:
    """Both policies' logs of one campaign, as impressions (and clicks) of one unit per logged row."""
    if campaign not in OPEN_BANDIT_CAMPAIGNS:
        raise ImportRefused(str(folder), None, f"campaign must be one of {', '.join(OPEN_BANDIT_CAMPAIGNS)}")
    for policy, arm in OPEN_BANDIT_POLICIES:
        path = folder / policy / campaign / f"{campaign}.csv"
        source = f"{policy}/{campaign}/{campaign}.csv"
        if not path.is_file():
            raise ImportRefused(str(path), None, "not found (expected the Open Bandit Dataset layout "
                                "{random,bts}/{men,women}/{men,women}.csv)")  # fmt: skip
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            need = ("", "timestamp", "item_id", "position", "click", "propensity_score")
            if [c for c in need if c not in header]:
                raise ImportRefused(str(path), 1, f"not an Open Bandit file: it needs the columns {need[1:]}")
            index = {name: header.index(name) for name in need}
            for values in reader:
                line = reader.line_num
                try:
                    click = values[index["click"]]
                    if click not in ("0", "1"):
                        raise ValueError(f"click must be 0 or 1, got {click!r}")
                    fields = {
                        "timestamp": values[index["timestamp"]], "user": f"{policy}-{values[index['']]}", "arm": arm,
                        "item": values[index["item_id"]], "position": values[index["position"]],
                        "propensity": values[index["propensity_score"]],
                    }  # fmt: skip
                    content = "\x1f".join(values)
                    yield _row(source, line, {**fields, "event_type": "impression"}, content)
                    if click == "1":
                        yield _row(source, line, {**fields, "event_type": "click"}, content)
                except (ValueError, IndexError) as error:
                    raise ImportRefused(str(path), line, str(error)) from None


# ---- writer --------------------------------------------------------------------------


def event_id(experiment_key: str, row: LogRow, repeat: int) -> str:
    """Deterministic id of a row's event: re-importing the same data yields the same ids."""
    digest = hashlib.sha256(
        "\x1e".join((experiment_key, row.source, row.content, row.event_type, str(repeat))).encode()
    ).hexdigest()
    return f"import-{digest[:48]}"


def _experiment(
    key: str,
    rows: Sequence[LogRow],
    owner: User | None,
    control: str | None,
    name: str | None,
    primary_metric: str,
    analysis_method: str,
) -> tuple[Experiment, bool]:
    first, last = min(r.timestamp for r in rows), max(r.timestamp for r in rows)
    arms_seen = list(dict.fromkeys(r.arm for r in rows))
    experiment = Experiment.objects.select_for_update().filter(key=key).first()
    if experiment is None:
        if owner is None:
            raise ImportRefused(key, None, "the experiment does not exist; name its owner (--owner) to create it")
        control = control or arms_seen[0]
        if control not in arms_seen:
            raise ImportRefused(key, None, f"control arm {control!r} is not in the data (arms: {', '.join(arms_seen)})")
        experiment = Experiment.objects.create(
            key=key, name=name or key, owner=owner, source=Experiment.Source.IMPORTED, status=Experiment.Status.STOPPED,
            salt=f"{key}-imported", primary_metric=primary_metric, analysis_method=analysis_method,
            started_at=first, stopped_at=last,
        )  # fmt: skip
        for position, arm in enumerate(arms_seen):
            Arm.objects.create(experiment=experiment, name=arm, is_control=arm == control, position=position)
        return experiment, True
    if experiment.source != Experiment.Source.IMPORTED:
        raise ImportRefused(key, None, "this experiment is served by the platform; only imported ones take logs")
    existing = dict(experiment.arms.values_list("name", "is_control"))
    if control and not existing.get(control):
        raise ImportRefused(key, None, f"its control is {next(n for n, c in existing.items() if c)!r}, not {control!r}")
    for offset, arm in enumerate(a for a in arms_seen if a not in existing):
        Arm.objects.create(experiment=experiment, name=arm, position=len(existing) + offset)
    experiment.started_at = min(experiment.started_at or first, first)
    experiment.stopped_at = max(experiment.stopped_at or last, last)
    experiment.save(update_fields=["started_at", "stopped_at"])
    return experiment, False


def import_traffic(
    rows: Sequence[LogRow],
    *,
    experiment_key: str,
    owner: User | None = None,
    control: str | None = None,
    name: str | None = None,
    primary_metric: str = "ctr",
    analysis_method: str = Experiment.AnalysisMethod.FIXED_HORIZON,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Store the rows as exposures and events of the imported experiment (see the module docstring).

    A new experiment is analysed by `analysis_method`: by default the fixed-horizon test, as an imported
    log is complete and read once (its horizon is the log); "sequential" for a log imported as it grows.
    """
    if analysis_method not in Experiment.AnalysisMethod.values:
        raise ImportRefused(experiment_key, None, f"analysis method must be one of "
                            f"{', '.join(Experiment.AnalysisMethod.values)}, not {analysis_method!r}")  # fmt: skip
    if not rows:
        raise ImportRefused(experiment_key, None, "the data has no rows")
    now = timezone.now()
    with transaction.atomic():
        experiment, created = _experiment(experiment_key, rows, owner, control, name, primary_metric, analysis_method)
        lock_state(experiment.pk)
        arm_ids = dict(experiment.arms.values_list("name", "id"))
        arm_names = {v: k for k, v in arm_ids.items()}
        # Each user's arm (refusing a second one) and first event.
        first_seen: dict[str, tuple[datetime, int]] = {}
        arm_of: dict[str, LogRow] = {}
        for row in rows:
            seen = arm_of.setdefault(row.user, row)
            if seen.arm != row.arm:
                raise ImportRefused(row.source, row.line, f"user {row.user!r} is in arm {row.arm!r} here but in "
                                    f"{seen.arm!r} at {seen.source}, line {seen.line}")  # fmt: skip
            if row.user not in first_seen or row.timestamp < first_seen[row.user][0]:
                first_seen[row.user] = (row.timestamp, arm_ids[row.arm])
        existing = {} if created else {
            user: (arm_id, first)
            for user, arm_id, first in Exposure.objects.filter(experiment=experiment)
            .values_list("user_id", "arm_id", "first_exposed_at")
            .iterator(chunk_size=BATCH)
            if user in first_seen
        }  # fmt: skip
        moved = []
        for user, (arm_id, first) in existing.items():
            if arm_id != first_seen[user][1]:
                row = arm_of[user]
                raise ImportRefused(row.source, row.line, f"user {user!r} is in arm {row.arm!r} here but was imported "
                                    f"into arm {arm_names[arm_id]!r} before")  # fmt: skip
            if first_seen[user][0] < first:
                moved.append(user)
        for user in moved:
            Exposure.objects.filter(experiment=experiment, user_id=user).update(first_exposed_at=first_seen[user][0])
        new = [
            Exposure(experiment=experiment, arm_id=arm_id, user_id=user, bucket=0, first_exposed_at=first)
            for user, (first, arm_id) in first_seen.items()
            if user not in existing
        ]
        Exposure.objects.bulk_create(new, batch_size=BATCH)

        repeats: Counter[tuple[str, str, str]] = Counter()
        stored = 0
        for start in range(0, len(rows), BATCH):
            values = []
            for row in rows[start : start + BATCH]:
                identity = (row.source, row.content, row.event_type)
                values.append((event_id(experiment.key, row, repeats[identity]), row.event_type, row.user, row.item,
                               None, experiment.pk, arm_ids[row.arm], row.position, row.propensity, row.revenue,
                               row.timestamp, now))  # fmt: skip
                repeats[identity] += 1
            stored += insert_events(values)
            if progress:
                progress(len(values))
        ExperimentChange.objects.create(
            experiment=experiment, user=owner, action="import",
            after={"sources": sorted({r.source for r in rows}), "rows": len(rows), "stored": stored,
                   "new_users": len(new)},
        )  # fmt: skip
    return ImportResult(
        experiment_id=experiment.pk, experiment_key=experiment.key, created=created, rows=len(rows), stored=stored,
        duplicates=len(rows) - stored, new_users=len(new), arms=list(arm_ids),
        exposures_moved=len(moved),
    )  # fmt: skip
