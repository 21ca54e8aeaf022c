"""Results of an interleaving experiment, from its InterleavingDaily rows only (a row per day).

The block (``interleaving_block``): sessions, sessions won by team A (the control) and by team
B, ties, the clicks credited to each team, and the verdict of ``engine.interleaving.
interleaving_test`` on those counts: A's share of the decided sessions with its Wilson interval,
Δ = (wins A - wins B) / sessions with its interval, the two-sided exact sign-test p value
(ties left out of the test, counted in Δ) and a verdict:

    "<B arm> wins" / "<A arm> wins"   p < alpha, by the side that won more sessions
    "no significant difference"       p >= alpha
    "not enough data"                 no session yet, or none decided (every session tied)

``sequential`` is the always-valid version (``engine.interleaving.sequential_sign_test``: a
beta-mixture SPRT on the same share, with its confidence sequence for the share and for Δ), which
may be read after every session. As for the A/B verdicts (``engine.verdicts``), the verdict's
basis (``verdict_basis``) is the experiment's ``analysis_method``, never switched by Stop: the
sequential test, or the fixed-horizon sign test once the plan's sessions are reached (or an early
read was recorded; an imported log is complete). ``verdict_p_value`` is the basis's p value and
``verdict_ci_low``/``verdict_ci_high`` its interval for Δ, so p < alpha exactly when it excludes 0.

``history`` repeats both tests on the cumulative counts at the end of each day (the chart).
"""

from __future__ import annotations

from typing import NamedTuple

from django.db.models import Sum

from analysis.models import InterleavingDaily, InterleavingState
from analysis.results_types import InterleavingAnalysis, InterleavingLook, InterleavingSequential
from engine.interleaving import InterleavingError, InterleavingResult, Tally, interleaving_test, sequential_sign_test
from engine.interleaving.sequential import DEFAULT_N_STAR, concentration_for
from engine.planning import InterleavingPlan
from experiments.models import Experiment, VerdictOverride
from experiments.services.plans import experiment_plan
from serving.services.interleaving import teams

NO_DIFFERENCE, NOT_ENOUGH_DATA = "no significant difference", "not enough data"
_SUMS = ("sessions", "wins_a", "wins_b", "ties", "clicks_a", "clicks_b")
EXPLANATION = (
    "Interleaving (team draft): every exposed request gets one list built from both arms' rankings, like two "
    "captains picking players: in each round a fair coin decides which arm picks first, then each arm adds its best "
    "item not yet in the list. A click is credited to the arm that contributed the clicked item; a session (one "
    "served list) is won by the arm with more credited clicks and tied otherwise, including sessions without clicks. "
    "The verdict is a two-sided exact sign test of the share of decided sessions won by A against 1/2: tied "
    "sessions carry no preference and are left out of the test, but they dilute Δ = (wins A - wins B) / sessions. "
    "The sign test is a fixed-horizon test, valid once the planned number of sessions is reached; its always-valid "
    "version (a beta-mixture sequential probability ratio test with a confidence sequence) may be read every day "
    "without inflating false positives. The experiment's analysis method, chosen when it was designed, says which "
    "one decides."
)


def _n_star(experiment: Experiment) -> tuple[float, str]:
    """Decided sessions at which the always-valid test is tightest, and where they come from: the plan's
    decided sessions when the experiment has a plan, else the module default (the mixture is valid for
    any N*; N* only moves its power)."""
    plan = experiment_plan(experiment)
    if isinstance(plan, InterleavingPlan):
        try:
            concentration_for(plan.decided, experiment.alpha)  # too few decided sessions for a mixture?
        except InterleavingError:
            return DEFAULT_N_STAR, "default"
        return float(plan.decided), "plan"
    return DEFAULT_N_STAR, "default"


class _Tests(NamedTuple):
    """Both tests on one tally: the sign test and the always-valid sign test."""

    fixed: InterleavingResult
    sequential: InterleavingSequential


class _Decisive(NamedTuple):
    """The verdict's test (the analysis method's): the team it prefers, its p-value and its interval for Δ."""

    preferred: str | None
    p_value: float
    delta_interval: tuple[float, float] | None


def _test(
    experiment: Experiment, counts: dict[str, int], n_star: tuple[float, str] = (DEFAULT_N_STAR, "default")
) -> _Tests | None:
    """interleaving_test and sequential_sign_test (tightest at `n_star` decided sessions) on the counts, or
    None when there is no session."""
    try:
        tally = Tally(counts["wins_a"], counts["wins_b"], counts["ties"])
        result = interleaving_test(tally, alpha=experiment.alpha)
        sequential = sequential_sign_test(tally, experiment.alpha, n_star=n_star[0])
    except InterleavingError:
        return None
    return _Tests(result, InterleavingSequential(
        p_value=sequential.p_value, significant=sequential.significant, preferred=sequential.preferred,
        share_a_sequence=sequential.share_a_sequence, delta_sequence=sequential.delta_sequence,
        n_star=sequential.n_star, n_star_source=n_star[1], concentration=sequential.concentration,
        test=sequential.method,
    ))  # fmt: skip


def interleaving_block(experiment: Experiment, traffic_filter: dict[str, bool]) -> InterleavingAnalysis:
    """The interleaving block of the results (module docstring) over the chosen traffic's rows."""
    team_a, team_b = teams(list(experiment.arms.all()))
    n_star = _n_star(experiment)
    days = (
        InterleavingDaily.objects.filter(experiment=experiment, **traffic_filter)
        .values("day")
        .annotate(**{name: Sum(name) for name in _SUMS})
        .order_by("day")
    )
    totals = dict.fromkeys(_SUMS, 0)
    history = []
    for day in days:
        for name in _SUMS:
            totals[name] += int(day[name])
        look = _test(experiment, totals, n_star)
        if look is None or look.fixed.delta_interval is None or look.sequential.delta_sequence is None:
            continue
        (ci_low, ci_high), (cs_low, cs_high) = look.fixed.delta_interval, look.sequential.delta_sequence
        history.append(InterleavingLook(
            day=day["day"].isoformat(), sessions=totals["sessions"], wins_a=totals["wins_a"], wins_b=totals["wins_b"],
            ties=totals["ties"], clicks_a=totals["clicks_a"], clicks_b=totals["clicks_b"], delta=look.fixed.delta,
            ci_low=ci_low, ci_high=ci_high, p_value=look.fixed.p_value, sequential_p_value=look.sequential.p_value,
            cs_low=cs_low, cs_high=cs_high,
        ))  # fmt: skip
    tests = _test(experiment, totals, n_star)
    basis = experiment.analysis_method
    decisive: _Decisive | None = None  # the basis's test; None without one
    if tests is not None:
        fixed, sequential = tests
        decisive = (_Decisive(fixed.preferred, fixed.p_value, fixed.delta_interval) if basis == "fixed_horizon"
                    else _Decisive(sequential.preferred, sequential.p_value, sequential.delta_sequence))  # fmt: skip
    plan = experiment_plan(experiment)
    waiting = (
        basis == "fixed_horizon"
        and experiment.source == Experiment.Source.PLATFORM
        and not VerdictOverride.objects.filter(experiment=experiment).exists()
        and (not isinstance(plan, InterleavingPlan) or totals["sessions"] < plan.sessions)
    )
    interval = None
    if waiting:
        verdict, decisive = NOT_ENOUGH_DATA, None
    elif tests is None or tests.fixed.share_a is None or decisive is None:
        verdict = NOT_ENOUGH_DATA
    elif decisive.preferred is None:
        verdict = NO_DIFFERENCE
    else:
        verdict = f"{(team_a if decisive.preferred == 'A' else team_b).name} wins"
    if decisive is not None and verdict != NOT_ENOUGH_DATA:
        interval = decisive.delta_interval
    state = InterleavingState.objects.filter(pk=experiment.pk).first()
    fixed_test = tests.fixed if tests else None
    return InterleavingAnalysis(
        method="team_draft",
        explanation=EXPLANATION,
        team_a=team_a.name,
        team_b=team_b.name,
        sessions=totals["sessions"],
        wins_a=totals["wins_a"],
        wins_b=totals["wins_b"],
        ties=totals["ties"],
        clicks_a=totals["clicks_a"],
        clicks_b=totals["clicks_b"],
        sequential=tests.sequential if tests else None,
        share_a=fixed_test.share_a if fixed_test else None,
        share_a_interval=fixed_test.share_a_interval if fixed_test else None,
        delta=fixed_test.delta if fixed_test else None,
        delta_interval=fixed_test.delta_interval if fixed_test else None,
        p_value=fixed_test.p_value if fixed_test else None,
        confidence=fixed_test.confidence if fixed_test else None,
        significant=fixed_test.significant if fixed_test else None,
        preferred=fixed_test.preferred if fixed_test else None,
        test=fixed_test.method if fixed_test else None,
        alpha=experiment.alpha,
        preferred_arm={"A": team_a.name, "B": team_b.name}.get(decisive.preferred or "") if decisive else None,
        verdict=verdict,
        verdict_basis=basis,
        verdict_p_value=decisive.p_value if decisive else None,
        verdict_ci_low=interval[0] if interval else None,
        verdict_ci_high=interval[1] if interval else None,
        uncredited_clicks=state.uncredited_clicks if state else 0,
        history=tuple(history),
    )
