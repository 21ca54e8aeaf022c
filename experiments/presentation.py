"""Plain-language verdict badges for an experiment's results (Django-free; input is the results dict).

Each treatment arm's comparison on the primary metric gets one badge and a reason:

    winning        the treatment is significantly better (Holm-adjusted p < alpha)
    losing         the control is significantly better
    needs more data the engine could not test yet (no users or no variance), or the test is not
                   significant while fewer users than the plan needs have been exposed
    inconclusive   not significant although the planned sample size was reached (or no plan exists
                   and the experiment has stopped)

While the experiment runs the basis is the always-valid sequential test; once it stops, the
fixed-horizon test. Both are described in experiments.services.results. A bandit experiment's
basis is its cohort analysis (period-weighted lift, batched z test), never the pooled test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WINNING, LOSING, INCONCLUSIVE, NEEDS_DATA = "winning", "losing", "inconclusive", "needs-data"
LABELS = {WINNING: "Winning", LOSING: "Losing", INCONCLUSIVE: "Inconclusive", NEEDS_DATA: "Needs more data"}
METRIC_LABELS = {
    "ctr": "CTR",
    "conversion_rate": "conversion",
    "add_to_cart_rate": "add-to-cart rate",
    "revenue_per_user": "revenue per user",
    "clicks_per_user": "clicks per user",
}


BASES = {
    "sequential": "sequential test",
    "fixed_horizon": "fixed-horizon test",
    "bandit_cohorts": "batched test within cohorts of first exposure",
}


def _bandit_comparisons(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A bandit experiment's cohort comparisons by treatment arm ({} for other designs)."""
    return {comp["arm"]: comp for comp in (results.get("bandit") or {}).get("comparisons", [])}


@dataclass(frozen=True, slots=True)
class Badge:
    arm: str
    kind: str
    label: str
    reason: str


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f} %"


def badges(results: dict[str, Any], planned_users_per_arm: int | None = None) -> list[Badge]:
    """One badge per treatment arm (see the module docstring for the rules); for an interleaving
    experiment one badge for team B against team A (`interleaving_badge`, `planned_users_per_arm` read
    as the planned sessions)."""
    if results.get("interleaving"):
        return [interleaving_badge(results["interleaving"], planned_users_per_arm)]
    metric = results["primary_metric"]
    label = METRIC_LABELS.get(metric, metric)
    users = {arm["name"]: arm["users"] for arm in results["arms"]}
    out: list[Badge] = []
    cohorts = _bandit_comparisons(results)
    for comp in results["comparisons"]:
        arm, verdict, p_value = comp["arm"], comp["verdict"], comp["verdict_p_value"]
        basis = BASES.get(comp["verdict_basis"], comp["verdict_basis"])
        relative = comp["metrics"][metric].get("relative") or {}
        if arm in cohorts:
            cohort = cohorts[arm]
            relative = {"effect": cohort["lift"], "ci_low": cohort["lift_ci_low"], "ci_high": cohort["lift_ci_high"]}
        lift = (
            f"relative lift {_percent(relative.get('effect'))} "
            f"[{_percent(relative.get('ci_low'))}, {_percent(relative.get('ci_high'))}]"
            if relative
            else "no lift estimate yet"
        )
        smallest = min(users[arm], users[comp["control"]])
        if verdict == "not enough data" or p_value is None:
            error = comp["metrics"][metric].get("error") or comp.get("sequential_error") or "no data yet"
            if comp["verdict_basis"] == "bandit_cohorts":
                error = (results.get("bandit") or {}).get("error") or "no cohort with users in both arms yet"
            out.append(Badge(arm, NEEDS_DATA, LABELS[NEEDS_DATA], f"{label} cannot be tested yet: {error}"))
        elif verdict in ("treatment wins", "control wins"):
            kind = WINNING if verdict == "treatment wins" else LOSING
            reason = f"{label}: {lift}; {basis}, Holm-adjusted p = {p_value:.3g} < {results['alpha']:g}"
            out.append(Badge(arm, kind, LABELS[kind], reason))
        elif planned_users_per_arm and smallest < planned_users_per_arm:
            reason = (f"{label}: {lift}; not significant (p = {p_value:.3g}) with {smallest:,} of the "
                      f"{planned_users_per_arm:,} users per arm the plan needs")  # fmt: skip
            out.append(Badge(arm, NEEDS_DATA, LABELS[NEEDS_DATA], reason))
        else:
            reason = f"{label}: {lift}; no significant difference ({basis}, p = {p_value:.3g})"
            out.append(Badge(arm, INCONCLUSIVE, LABELS[INCONCLUSIVE], reason))
    return out


N_STAR_SOURCES = {"plan": "the plan's sample size", "default": "default: no plan"}


def sequential_tuning(results: dict[str, Any]) -> str | None:
    """Where the treatments' always-valid tests are tightest (their `sequential` dict's `n_star`, total
    users of the two arms, and `n_star_source`), in words for the results page and the report:
    "tightest at 24,000 users (the plan's sample size)", or "(default: no plan)". When the treatments'
    N* differ (unequal weights), each arm's: "tightest at 24,000 users for knn and 36,000 for als (the
    plan's sample size)". None when no comparison has a sequential test yet."""
    tests = [(comp["arm"], comp["sequential"]) for comp in results.get("comparisons", []) if comp.get("sequential")]
    if not tests:
        return None
    sources = {test["n_star_source"] for _, test in tests}
    if len({(test["n_star"], test["n_star_source"]) for _, test in tests}) == 1:
        return f"tightest at {tests[0][1]['n_star']:,.0f} users ({N_STAR_SOURCES[sources.pop()]})"
    if len(sources) == 1:
        sizes = [f"{test['n_star']:,.0f}" + (" users" if i == 0 else "") + f" for {arm}"
                 for i, (arm, test) in enumerate(tests)]  # fmt: skip
        return f"tightest at {', '.join(sizes[:-1])} and {sizes[-1]} ({N_STAR_SOURCES[sources.pop()]})"
    return "tightest at " + ", ".join(
        f"{test['n_star']:,.0f} users for {arm} ({N_STAR_SOURCES[test['n_star_source']]})" for arm, test in tests
    )


def _interval(values: list[float] | None, scale: float = 1.0, digits: int = 3) -> str:
    return "–" if values is None else f"[{values[0] * scale:+.{digits}f}, {values[1] * scale:+.{digits}f}]"


INTERLEAVING_BASES = {"sequential": "always-valid sign test", "fixed_horizon": "sign test"}


def interleaving_badge(block: dict[str, Any], planned_sessions: int | None = None) -> Badge:
    """Team B (the non-control arm) against team A: winning / losing when the verdict's test is
    significant (p < alpha) by the side that won more sessions; needs more data before any decided
    session, or when not significant with fewer sessions than planned; else inconclusive. The test is
    the block's `verdict_basis`: the always-valid sign test while the experiment runs, the
    fixed-horizon sign test once it has stopped."""
    arm_b = block["team_b"]
    if block["share_a"] is None:
        reason = f"no session has been won by either arm yet ({block['sessions']:,} sessions, all tied)"
        return Badge(arm_b, NEEDS_DATA, LABELS[NEEDS_DATA], reason)
    sequential = block["verdict_basis"] == "sequential"
    interval = block["sequential"]["delta_sequence"] if sequential else block["delta_interval"]
    summary = (
        f"{arm_b} won {block['wins_b']:,} and {block['team_a']} {block['wins_a']:,} of {block['sessions']:,} sessions "
        f"({block['ties']:,} ties); Δ = {block['delta']:+.3f} {_interval(interval)}"
    )
    test, p_value = INTERLEAVING_BASES[block["verdict_basis"]], block["verdict_p_value"]
    preferred = block["sequential"]["preferred"] if sequential else block["preferred"]
    if preferred is not None:
        kind = WINNING if preferred == "B" else LOSING
        reason = f"{summary}; {test} p = {p_value:.3g} < {block['alpha']:g}"
        return Badge(arm_b, kind, LABELS[kind], reason)
    if planned_sessions and block["sessions"] < planned_sessions:
        reason = (f"{summary}; not significant ({test} p = {p_value:.3g}) with {block['sessions']:,} of the "
                  f"{planned_sessions:,} sessions the plan needs")  # fmt: skip
        return Badge(arm_b, NEEDS_DATA, LABELS[NEEDS_DATA], reason)
    return Badge(arm_b, INCONCLUSIVE, LABELS[INCONCLUSIVE], f"{summary}; no significant preference ({test} p = "
                 f"{p_value:.3g})")  # fmt: skip


def exposed_users(results: dict[str, Any]) -> int:
    """Users exposed to the experiment: the arms' users added up, or for an interleaving experiment
    (every exposed user sees both arms) its own count."""
    if results.get("interleaving"):
        return int(results["exposed_users"])
    return sum(int(arm["users"]) for arm in results["arms"])


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per arm for the summary table: the arm's numbers and, for treatments, the primary
    metric's lift (absolute and relative, with CIs), the adjusted p-value, the Bayesian chance to
    win (conversion) and the verdict."""
    metric = results["primary_metric"]
    comparisons = {comp["arm"]: comp for comp in results["comparisons"]}
    cohorts = _bandit_comparisons(results)
    rows = []
    for arm in results["arms"]:
        row: dict[str, Any] = {**arm, "comparison": None}
        comp = comparisons.get(arm["name"])
        if comp is not None:
            entry = comp["metrics"][metric]
            absolute, relative = entry.get("absolute"), entry.get("relative")
            if comp["verdict_basis"] == "bandit_cohorts":
                # The pooled lift is biased under adaptive weights: show the period-weighted one.
                cohort = cohorts.get(arm["name"])
                absolute = cohort and {"effect": cohort["effect"], "ci_low": cohort["ci_low"],
                                       "ci_high": cohort["ci_high"]}  # fmt: skip
                relative = cohort and {"effect": cohort["lift"], "ci_low": cohort["lift_ci_low"],
                                       "ci_high": cohort["lift_ci_high"]}  # fmt: skip
            row["comparison"] = {
                "absolute": absolute,
                "relative": relative,
                "p_value_adjusted": comp["verdict_p_value"],
                "chance_to_win": (comp.get("bayesian") or {}).get("chance_to_win"),
                "sequential": comp.get("sequential"),
                "verdict": comp["verdict"],
                "verdict_basis": comp["verdict_basis"],
                "basis": BASES.get(comp["verdict_basis"], comp["verdict_basis"]),
            }
        rows.append(row)
    return rows


EXPORT_COLUMNS = (
    "experiment", "arm", "is_control", "metric", "primary", "value", "users", "absolute_lift", "absolute_ci_low",
    "absolute_ci_high", "relative_lift", "relative_ci_low", "relative_ci_high", "p_value", "p_value_adjusted",
    "chance_to_win", "verdict",
)  # fmt: skip


def export_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """A tidy table for CSV export: one row per arm x metric, treatments with their comparison."""
    comparisons = {comp["arm"]: comp for comp in results["comparisons"]}
    rows = []
    for arm in results["arms"]:
        comp = comparisons.get(arm["name"])
        for metric in METRIC_LABELS:
            row = dict.fromkeys(EXPORT_COLUMNS)
            row.update(experiment=results["experiment"], arm=arm["name"], is_control=arm["is_control"],
                       metric=metric, primary=metric == results["primary_metric"], value=arm[metric],
                       users=arm["users"])  # fmt: skip
            if comp is not None:
                entry = comp["metrics"][metric]
                absolute, relative = entry.get("absolute") or {}, entry.get("relative") or {}
                row.update(
                    absolute_lift=absolute.get("effect"), absolute_ci_low=absolute.get("ci_low"),
                    absolute_ci_high=absolute.get("ci_high"), relative_lift=relative.get("effect"),
                    relative_ci_low=relative.get("ci_low"), relative_ci_high=relative.get("ci_high"),
                    p_value=absolute.get("p_value"), p_value_adjusted=entry.get("p_value_adjusted"),
                )  # fmt: skip
                if metric == "conversion_rate":
                    row["chance_to_win"] = (comp.get("bayesian") or {}).get("chance_to_win")
                if metric == results["primary_metric"]:
                    row["verdict"] = comp["verdict"]
            rows.append(row)
    rows.extend(_bandit_export_rows(results))
    return rows


def _bandit_export_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """A bandit experiment's cohort comparisons, one row per treatment: metric "<primary> (bandit
    cohorts)", value = the arm's period-weighted rate, p = batched z test (adjusted: Holm)."""
    bandit = results.get("bandit") or {}
    rows = []
    for comp in bandit.get("comparisons", []):
        row = dict.fromkeys(EXPORT_COLUMNS)
        row.update(
            experiment=results["experiment"], arm=comp["arm"], is_control=False,
            metric=f"{results['primary_metric']} (bandit cohorts)", primary=True, value=comp["arm_rate"],
            users=comp["users"], absolute_lift=comp["effect"], absolute_ci_low=comp["ci_low"],
            absolute_ci_high=comp["ci_high"], relative_lift=comp["lift"], relative_ci_low=comp["lift_ci_low"],
            relative_ci_high=comp["lift_ci_high"], p_value=comp["batched_p_value"],
            p_value_adjusted=comp["p_value_adjusted"], verdict=comp.get("verdict"),
        )  # fmt: skip
        rows.append(row)
    return rows


INTERLEAVING_EXPORT_COLUMNS = (
    "experiment", "day", "team_a", "team_b", "sessions", "wins_a", "wins_b", "ties", "clicks_a", "clicks_b",
    "delta", "delta_ci_low", "delta_ci_high", "p_value", "delta_cs_low", "delta_cs_high", "sequential_p_value",
    "verdict", "verdict_basis",
)  # fmt: skip


def interleaving_export_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """An interleaving experiment's CSV: one row per day with the counts and both tests (the sign test's
    interval, the always-valid test's confidence sequence) as of the end of that day (cumulative), then
    a row "all" with the totals, the verdict and its basis."""
    block = results["interleaving"]
    common = {"experiment": results["experiment"], "team_a": block["team_a"], "team_b": block["team_b"]}
    rows = [
        {**common, **{name: look[name] for name in INTERLEAVING_EXPORT_COLUMNS if name in look},
         "delta_ci_low": look["ci_low"], "delta_ci_high": look["ci_high"], "delta_cs_low": look["cs_low"],
         "delta_cs_high": look["cs_high"], "verdict": None, "verdict_basis": None}
        for look in block["history"]
    ]  # fmt: skip
    interval = block["delta_interval"] or [None, None]
    sequential = block["sequential"] or {}
    sequence = sequential.get("delta_sequence") or [None, None]
    rows.append({**common, **{name: block[name] for name in INTERLEAVING_EXPORT_COLUMNS[4:10]}, "day": "all",
                 "delta": block["delta"], "delta_ci_low": interval[0], "delta_ci_high": interval[1],
                 "p_value": block["p_value"], "delta_cs_low": sequence[0], "delta_cs_high": sequence[1],
                 "sequential_p_value": sequential.get("p_value"), "verdict": block["verdict"],
                 "verdict_basis": block["verdict_basis"]})  # fmt: skip
    return rows


def export_table(results: dict[str, Any]) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """(columns, rows) of the results' CSV export for the experiment's design."""
    if results.get("interleaving"):
        return INTERLEAVING_EXPORT_COLUMNS, interleaving_export_rows(results)
    return EXPORT_COLUMNS, export_rows(results)
