"""Plain-language verdict badges and the export table for an experiment's results (Django-free; input
is the typed results, ``analysis.results_types``).

Each treatment arm's comparison gets one badge, read straight from its verdict (``engine.verdicts``:
one set of labels on every page): Winning, Losing, No significant difference, Needs more data. The
reason names the test behind the verdict and shows that test's own interval and p-value, the numbers
the summary row, the lift chart's band, the report, the CSV and the JSON all carry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from analysis.results_types import (
    ABResults,
    BanditComparison,
    Comparison,
    ExperimentResults,
    InterleavingAnalysis,
    InterleavingResults,
    json_ready,
)
from engine.stats import SequentialResult, TestResult
from engine.verdicts import CONTROL_WINS, KINDS, NOT_ENOUGH_DATA, TESTS, TREATMENT_WINS
from engine.verdicts import LABELS as LABELS_OF_VERDICTS

WINNING, LOSING, INCONCLUSIVE, NEEDS_DATA = "winning", "losing", "inconclusive", "needs-data"
# The page labels by badge kind: the verdicts' own labels, so every page (and design) says the same.
LABELS = {KINDS[verdict]: label for verdict, label in LABELS_OF_VERDICTS.items()}
METRIC_LABELS = {
    "ctr": "CTR",
    "conversion_rate": "conversion",
    "add_to_cart_rate": "add-to-cart rate",
    "revenue_per_user": "revenue per user",
    "clicks_per_user": "clicks per user",
}


BASES = TESTS


def _bandit_comparisons(results: ABResults) -> dict[str, BanditComparison]:
    """A bandit experiment's cohort comparisons by treatment arm ({} for other designs)."""
    return {comp.arm: comp for comp in results.bandit.comparisons} if results.bandit else {}


@dataclass(frozen=True, slots=True)
class Badge:
    arm: str
    kind: str
    label: str
    reason: str


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f} %"


def badges(results: ExperimentResults, planned_sessions: int | None = None) -> list[Badge]:
    """One badge per treatment arm, from its verdict (module docstring); for an interleaving experiment
    one badge for team B against team A (`interleaving_badge`, with the plan's sessions)."""
    if isinstance(results, InterleavingResults):
        return [interleaving_badge(results.interleaving, planned_sessions)]
    label = METRIC_LABELS.get(results.primary_metric, results.primary_metric)
    out: list[Badge] = []
    for comp in _comparisons(results):
        kind = KINDS[comp.verdict]
        out.append(Badge(comp.arm, kind, LABELS_OF_VERDICTS[comp.verdict], f"{label}: {verdict_reason(comp, results)}"))
    return out


def _comparisons(results: ExperimentResults) -> tuple[Comparison, ...]:
    return results.comparisons if isinstance(results, ABResults) else ()


def verdict_reason(comp: Comparison, results: ExperimentResults) -> str:
    """The verdict in words: the lift with the verdict test's own interval, the test and its p-value."""
    test, p_value = comp.verdict_test, comp.verdict_p_value
    if comp.verdict == NOT_ENOUGH_DATA or p_value is None:
        return f"cannot be decided yet ({test}): {comp.verdict_reason or 'no data yet'}"
    bonferroni = comp.verdict_adjustment == "bonferroni"
    level = 1 - comp.verdict_alpha / comp.verdict_treatments if bonferroni else None
    if comp.verdict_ci_low is None:  # the bandit's batched test has no interval
        lift = f"relative lift {_percent(comp.verdict_effect)}"
    else:
        lift = (f"relative lift {_percent(comp.verdict_effect)} [{_percent(comp.verdict_ci_low)}, "
                f"{_percent(comp.verdict_ci_high)}]")  # fmt: skip
        if level is not None:
            lift += f" ({level:.1%} interval, Bonferroni over {comp.verdict_treatments} treatments)"
    comparison = "<" if comp.verdict in (TREATMENT_WINS, CONTROL_WINS) else "≥"
    adjusted = "adjusted " if comp.verdict_adjustment != "none" else ""
    text = f"{lift}; {test}, {adjusted}p = {p_value:.3g} {comparison} {results.alpha:g}"
    if comp.override:
        text += f"; read before the plan's sample size by {comp.override.by}: {comp.override.reason}"
    return text


N_STAR_SOURCES = {"plan": "the plan's sample size", "default": "default: no plan"}


def sequential_tuning(results: ExperimentResults) -> str | None:
    """Where the treatments' always-valid tests are tightest (their `sequential` test's `n_star`, total
    users of the two arms, and `n_star_source`), in words for the results page and the report:
    "tightest at 24,000 users (the plan's sample size)", or "(default: no plan)". When the treatments'
    N* differ (unequal weights), each arm's: "tightest at 24,000 users for knn and 36,000 for als (the
    plan's sample size)". None when no comparison has a sequential test yet."""
    tests = [(comp.arm, comp.sequential) for comp in _comparisons(results) if comp.sequential]
    if not tests:
        return None
    sources = {test.n_star_source for _, test in tests}
    if len({(test.n_star, test.n_star_source) for _, test in tests}) == 1:
        return f"tightest at {tests[0][1].n_star:,.0f} users ({N_STAR_SOURCES[sources.pop()]})"
    if len(sources) == 1:
        sizes = [f"{test.n_star:,.0f}" + (" users" if i == 0 else "") + f" for {arm}"
                 for i, (arm, test) in enumerate(tests)]  # fmt: skip
        return f"tightest at {', '.join(sizes[:-1])} and {sizes[-1]} ({N_STAR_SOURCES[sources.pop()]})"
    return "tightest at " + ", ".join(
        f"{test.n_star:,.0f} users for {arm} ({N_STAR_SOURCES[test.n_star_source]})" for arm, test in tests
    )


def _interval(values: tuple[float, float] | None, scale: float = 1.0, digits: int = 3) -> str:
    return "–" if values is None else f"[{values[0] * scale:+.{digits}f}, {values[1] * scale:+.{digits}f}]"


INTERLEAVING_BASES = {"sequential": "always-valid sign test", "fixed_horizon": "sign test"}


def interleaving_badge(block: InterleavingAnalysis, planned_sessions: int | None = None) -> Badge:
    """Team B (the non-control arm) against team A, read from the block's verdict (the same labels as the
    A/B badges): Winning / Losing when the verdict's test prefers B / A, No significant difference,
    Needs more data. The reason shows the verdict test's own interval for Δ and its p-value."""
    arm_b = block.team_b
    test = INTERLEAVING_BASES[block.verdict_basis]
    if block.share_a is None or block.delta is None:
        reason = f"no session has been won by either arm yet ({block.sessions:,} sessions, all tied)"
        return Badge(arm_b, NEEDS_DATA, LABELS[NEEDS_DATA], reason)
    interval = None
    if block.verdict_ci_low is not None and block.verdict_ci_high is not None:
        interval = (block.verdict_ci_low, block.verdict_ci_high)
    summary = (
        f"{arm_b} won {block.wins_b:,} and {block.team_a} {block.wins_a:,} of {block.sessions:,} sessions "
        f"({block.ties:,} ties); Δ = {block.delta:+.3f} {_interval(interval)}"
    )
    p_value = block.verdict_p_value
    if block.verdict == NOT_ENOUGH_DATA or p_value is None:
        planned = f" of the {planned_sessions:,} the plan needs" if planned_sessions else ""
        reason = f"{summary}; the {test} is read at the plan's sample size ({block.sessions:,} sessions{planned})"
        return Badge(arm_b, NEEDS_DATA, LABELS[NEEDS_DATA], reason)
    if block.preferred_arm is not None:
        kind = WINNING if block.preferred_arm == arm_b else LOSING
        return Badge(arm_b, kind, LABELS[kind], f"{summary}; {test} p = {p_value:.3g} < {block.alpha:g}")
    reason = f"{summary}; no significant preference ({test} p = {p_value:.3g})"
    return Badge(arm_b, INCONCLUSIVE, LABELS[INCONCLUSIVE], reason)


def exposed_users(results: ExperimentResults) -> int:
    """Users exposed to the experiment: the arms' users added up, or for an interleaving experiment
    (every exposed user sees both arms) its own count."""
    if isinstance(results, InterleavingResults):
        return results.exposed_users
    return sum(arm.users for arm in results.arms) if isinstance(results, ABResults) else 0


def _effect(effect: float | None, ci_low: float | None, ci_high: float | None) -> dict[str, float | None]:
    return {"effect": effect, "ci_low": ci_low, "ci_high": ci_high}


def summary_rows(results: ExperimentResults) -> list[dict[str, Any]]:
    """One row per arm for the summary table (none for interleaving): the arm's numbers and, for treatments,
    the primary metric's absolute lift, the verdict's relative lift with the verdict test's own interval and
    p-value, the Bayesian chance to win on the primary metric and the verdict."""
    if not isinstance(results, ABResults):
        return []
    metric = results.primary_metric
    comparisons = {comp.arm: comp for comp in results.comparisons}
    cohorts = _bandit_comparisons(results)
    rows = []
    for arm in results.arms:
        row: dict[str, Any] = {**json_ready(asdict(arm)), "comparison": None}
        comp = comparisons.get(arm.name)
        if comp is not None:
            lift: SequentialResult | TestResult | BanditComparison | None = comp.metrics[metric].absolute
            if comp.verdict_basis == "bandit_cohorts":
                # The pooled lift is biased under adaptive weights: show the period-weighted one.
                lift = cohorts.get(arm.name)
            row["comparison"] = {
                "absolute": lift and _effect(lift.effect, lift.ci_low, lift.ci_high),
                "relative": _effect(comp.verdict_effect, comp.verdict_ci_low, comp.verdict_ci_high),
                "p_value": comp.verdict_p_value,
                "chance_to_win": comp.bayesian.chance_to_win if comp.bayesian else None,
                "verdict": comp.verdict,
                "label": comp.verdict_label,
                "kind": KINDS[comp.verdict],
                "verdict_basis": comp.verdict_basis,
                "basis": comp.verdict_test,
            }
        rows.append(row)
    return rows


def guardrail_rows(results: ExperimentResults) -> list[dict[str, Any]]:
    """One row per treatment arm and guardrail metric: its status (ok, breached, inconclusive) and why."""
    return [
        {**asdict(guard), "arm": comp.arm, "label": METRIC_LABELS.get(guard.metric, guard.metric)}
        for comp in _comparisons(results)
        for guard in comp.guardrails
    ]


def metric_rows(results: ExperimentResults) -> list[dict[str, Any]]:
    """One row per treatment arm and chosen metric (primary, secondary, guardrail): the relative lift with
    the interval and p-value of the experiment's analysis method, the Holm-adjusted p-value over all
    metrics, and the Bayesian chance to win; the numbers of the forest plot."""
    if not isinstance(results, ABResults):
        return []
    rows = []
    for comp in results.comparisons:
        for metric in results.chosen_metrics or (results.primary_metric,):
            entry = comp.metrics[metric]
            relative = entry.relative
            rows.append({
                "arm": comp.arm, "metric": metric, "label": METRIC_LABELS.get(metric, metric), "role": entry.role,
                "effect": relative and relative.effect, "ci_low": relative and relative.ci_low,
                "ci_high": relative and relative.ci_high, "p_value": relative and relative.p_value,
                "p_value_adjusted": entry.p_value_adjusted,
                "chance_to_win": entry.bayesian.chance_to_win if entry.bayesian else None, "error": entry.error,
            })  # fmt: skip
    return rows


EXPORT_COLUMNS = (
    "experiment", "arm", "is_control", "metric", "role", "value", "users", "test", "absolute_lift",
    "absolute_ci_low", "absolute_ci_high", "relative_lift", "relative_ci_low", "relative_ci_high", "p_value",
    "p_value_holm", "chance_to_win", "verdict", "verdict_basis", "verdict_p_value", "verdict_effect",
    "verdict_ci_low", "verdict_ci_high", "guardrail_status",
)  # fmt: skip


VERDICT_COLUMNS = ("verdict", "verdict_basis", "verdict_p_value", "verdict_effect", "verdict_ci_low", "verdict_ci_high")


def export_rows(results: ABResults) -> list[dict[str, Any]]:
    """A tidy table for CSV export, unrounded (the JSON's numbers): one row per arm x metric, treatments
    with their comparison by the analysis method; the verdict columns on the primary metric's rows,
    the guardrail status on the guardrail metrics' rows."""
    comparisons = {comp.arm: comp for comp in results.comparisons}
    rows = []
    for arm in results.arms:
        comp = comparisons.get(arm.name)
        for metric in METRIC_LABELS:
            row: dict[str, Any] = dict.fromkeys(EXPORT_COLUMNS)
            row.update(experiment=results.experiment, arm=arm.name, is_control=arm.is_control, metric=metric,
                       value=arm.metric(metric), users=arm.users)  # fmt: skip
            if comp is not None:
                entry = comp.metrics[metric]
                absolute, relative = entry.absolute, entry.relative
                row.update(
                    role=entry.role, test=entry.test, absolute_lift=absolute and absolute.effect,
                    absolute_ci_low=absolute and absolute.ci_low, absolute_ci_high=absolute and absolute.ci_high,
                    relative_lift=relative and relative.effect, relative_ci_low=relative and relative.ci_low,
                    relative_ci_high=relative and relative.ci_high, p_value=relative and relative.p_value,
                    p_value_holm=entry.p_value_adjusted,
                    chance_to_win=entry.bayesian.chance_to_win if entry.bayesian else None,
                )  # fmt: skip
                if metric == results.primary_metric:
                    row.update({name: getattr(comp, name) for name in VERDICT_COLUMNS})
                row["guardrail_status"] = next((g.status for g in comp.guardrails if g.metric == metric), None)
            rows.append(row)
    rows.extend(_bandit_export_rows(results))
    return rows


def _bandit_export_rows(results: ABResults) -> list[dict[str, Any]]:
    """A bandit experiment's cohort comparisons, one row per treatment: metric "<primary> (bandit
    cohorts)", value = the arm's period-weighted rate, p = batched z test (adjusted: Holm)."""
    rows = []
    for comp in results.bandit.comparisons if results.bandit else ():
        row: dict[str, Any] = dict.fromkeys(EXPORT_COLUMNS)
        row.update(
            experiment=results.experiment, arm=comp.arm, is_control=False,
            metric=f"{results.primary_metric} (bandit cohorts)", role="primary", value=comp.arm_rate,
            users=comp.users, test="bandit_cohorts", absolute_lift=comp.effect, absolute_ci_low=comp.ci_low,
            absolute_ci_high=comp.ci_high, relative_lift=comp.lift, relative_ci_low=comp.lift_ci_low,
            relative_ci_high=comp.lift_ci_high, p_value=comp.batched_p_value, p_value_holm=comp.p_value_adjusted,
            verdict=comp.verdict, verdict_basis="bandit_cohorts", verdict_p_value=comp.p_value_adjusted,
            verdict_effect=comp.lift,
        )  # fmt: skip
        rows.append(row)
    return rows


INTERLEAVING_EXPORT_COLUMNS = (
    "experiment", "day", "team_a", "team_b", "sessions", "wins_a", "wins_b", "ties", "clicks_a", "clicks_b",
    "delta", "delta_ci_low", "delta_ci_high", "p_value", "delta_cs_low", "delta_cs_high", "sequential_p_value",
    "verdict", "verdict_basis",
)  # fmt: skip


def interleaving_export_rows(results: InterleavingResults) -> list[dict[str, Any]]:
    """An interleaving experiment's CSV: one row per day with the counts and both tests (the sign test's
    interval, the always-valid test's confidence sequence) as of the end of that day (cumulative), then
    a row "all" with the totals, the verdict and its basis."""
    block = results.interleaving
    common = {"experiment": results.experiment, "team_a": block.team_a, "team_b": block.team_b}
    rows: list[dict[str, Any]] = [
        {**common, "day": look.day, "sessions": look.sessions, "wins_a": look.wins_a, "wins_b": look.wins_b,
         "ties": look.ties, "clicks_a": look.clicks_a, "clicks_b": look.clicks_b, "delta": look.delta,
         "delta_ci_low": look.ci_low, "delta_ci_high": look.ci_high, "p_value": look.p_value,
         "delta_cs_low": look.cs_low, "delta_cs_high": look.cs_high, "sequential_p_value": look.sequential_p_value,
         "verdict": None, "verdict_basis": None}
        for look in block.history
    ]  # fmt: skip
    interval = block.delta_interval or (None, None)
    sequence = (block.sequential.delta_sequence if block.sequential else None) or (None, None)
    rows.append({**common, "day": "all", "sessions": block.sessions, "wins_a": block.wins_a, "wins_b": block.wins_b,
                 "ties": block.ties, "clicks_a": block.clicks_a, "clicks_b": block.clicks_b, "delta": block.delta,
                 "delta_ci_low": interval[0], "delta_ci_high": interval[1], "p_value": block.p_value,
                 "delta_cs_low": sequence[0], "delta_cs_high": sequence[1],
                 "sequential_p_value": block.sequential.p_value if block.sequential else None,
                 "verdict": block.verdict, "verdict_basis": block.verdict_basis})  # fmt: skip
    return rows


def export_table(results: ExperimentResults) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """(columns, rows) of the results' CSV export for the experiment's design."""
    if isinstance(results, InterleavingResults):
        return INTERLEAVING_EXPORT_COLUMNS, interleaving_export_rows(results)
    if isinstance(results, ABResults):
        return EXPORT_COLUMNS, export_rows(results)
    raise TypeError(f"no export for {type(results).__name__}")
