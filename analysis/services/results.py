"""An experiment's results, computed from its rollups only (never from raw events).

``experiment_results(experiment)`` reads the experiment's ArmRollup rows (one per arm: users and the
per-user sums, sums of squares and cross products), its DailyRollup rows (arms x days) and its
RollupState: a handful of rows however much traffic there was, so the answer takes milliseconds for
10 M events as for 10 k. The numbers are as of the last fold (``as_of``); pass ``fold_first=True`` to
fold pending events first. The answer is typed (``analysis.results_types``: ``ABResults`` for A/B and
bandit experiments, ``InterleavingResults`` for interleaving); ``results_data`` serialises it for
every edge.

This module assembles them: per-arm figures (``arm_metrics``), each treatment against the control with
its verdict, guardrails, lift history and the Holm table (``comparisons``, with the plan's part in
``horizon``), the SRM check and the warnings.

Warnings are objects ``{code, message}``: srm, no_control, stopped_early, before_plan, underpowered,
same_variant, guardrail_breached, unattributed_events (and uncredited_clicks for interleaving).

Verdict values: "treatment wins" / "control wins" (significant, by the effect's sign; every metric
here is higher-is-better), "no significant difference", "not enough data" (the engine refused:
n < 2, no variance, no events; or a fixed-horizon experiment before its plan's sample size).

Bandit experiments (``design == "bandit"``): arms' weights change per period, so pooling an arm's users
is biased and the arms' sizes do not follow ``Arm.weight``. The ``bandit`` block
(``analysis.services.bandit_results.bandit_results``) compares arms within cohorts of first exposure;
the verdict of each treatment is the batched z test's (Holm across treatments, basis
``bandit_cohorts``; that test has no interval, so ``verdict_ci_*`` are null and the cohorts'
period-weighted lift interval is shown as description) and the SRM check is the one against the
weights served in each period. The pooled per-metric comparisons stay in ``comparisons`` as
description only.

Traffic: the rollups keep live and simulated users apart (``ArmRollup.simulated``); results are over
live users, simulated users, or both (``traffic="all"``, the rows added up).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import Sum

from analysis.models import ArmRollup, RollupState
from analysis.presentation import Badge, badges
from analysis.results_types import (
    ABResults,
    AsOf,
    BanditSrm,
    Comparison,
    ExperimentResults,
    InterleavingArm,
    InterleavingResults,
    MultipleTesting,
    ResultWarning,
    SrmUnavailable,
)
from analysis.services.arm_metrics import arm_result, arm_rows, daily, traffic_filter
from analysis.services.bandit_results import bandit_results
from analysis.services.comparisons import bandit_verdict, chosen_metrics, compare, holm, lift_history
from analysis.services.cuped import covariate_samples
from analysis.services.horizon import NOT_REACHED, Horizon, early_read, horizons, sequential_n_stars
from analysis.services.interleaving_results import interleaving_block
from analysis.services.rollups import fold
from engine.planning import InterleavingPlan, Plan
from engine.stats import SrmResult, StatisticError, srm_test
from experiments.models import Arm, Experiment
from experiments.services.bandit_schedule import is_bandit
from experiments.services.plans import experiment_plan
from serving.services.interleaving import teams

SRM_ALPHA = 0.001
UNDERPOWERED_DAYS = 90  # a plan needing more days than this gets the `underpowered` warning
_FINISHED = (Experiment.Status.STOPPED, Experiment.Status.CONCLUDED, Experiment.Status.ARCHIVED)


def experiment_results(experiment: Experiment, *, fold_first: bool = False, traffic: str = "all") -> ExperimentResults:
    """The experiment's results from its rollups (module docstring): ``InterleavingResults`` for an
    interleaving experiment, ``ABResults`` otherwise.

    `traffic`: "live" (users served for real), "simulated" (users of simulation runs) or "all".
    Raises ValueError for anything else.
    """
    traffic_filter(traffic)
    if fold_first:
        fold(experiment.pk)
    if experiment.design == Experiment.Design.INTERLEAVING:
        return _interleaving_results(experiment, traffic)
    return _ab_results(experiment, traffic)


def _ab_results(experiment: Experiment, traffic: str) -> ABResults:
    arms = list(experiment.arms.order_by("position", "pk"))
    row_of = arm_rows(experiment, arms, traffic)
    state = RollupState.objects.filter(pk=experiment.pk).first()
    control = next((arm for arm in arms if arm.is_control), None)
    bandit = bandit_results(experiment, arms, traffic, SRM_ALPHA) if is_bandit(experiment) else None
    srm: SrmResult | BanditSrm | SrmUnavailable
    if bandit is not None:
        # Against the weights served in each period, not the arms' configured weights.
        srm = bandit.srm or SrmUnavailable(bandit.error)
    else:
        try:
            srm = srm_test([int(row_of[a.pk].exposed_users) for a in arms], [a.weight for a in arms], alpha=SRM_ALPHA)
        except StatisticError as error:
            srm = SrmUnavailable(str(error))
    warnings = []
    if not isinstance(srm, SrmUnavailable) and srm.mismatch:
        warnings.append(ResultWarning("srm", f"sample ratio mismatch (p = {srm.p_value:.2g} < {SRM_ALPHA}): the "
                                      "arms' sizes do not match their weights, so assignment or logging is broken "
                                      "and the comparisons cannot be trusted"))  # fmt: skip

    comparisons: list[Comparison] = []
    treatments = [arm for arm in arms if control is not None and arm.pk != control.pk]
    if control is None:
        warnings.append(ResultWarning("no_control", "the experiment has no control arm: nothing to compare against"))
    covariates = covariate_samples(experiment, traffic) if treatments else {}
    plan = experiment_plan(experiment)  # one read of the planning fields and arms for all that follows
    n_stars = sequential_n_stars(experiment, arms, plan)
    horizon = horizons(experiment, plan, arms, row_of)
    override = early_read(experiment)
    for arm in treatments:
        assert control is not None  # there are treatments only with a control
        comparisons.append(compare(experiment, (control, arm), (row_of[control.pk], row_of[arm.pk]),
                                   treatments=len(treatments), covariates=covariates, n_star=n_stars[arm.pk],
                                   horizon=horizon.get(arm.pk, NOT_REACHED), override=override))  # fmt: skip
    comparisons, multiple_testing = holm(experiment, comparisons)
    if bandit is not None:
        comparisons = [bandit_verdict(comparison, bandit) for comparison in comparisons]
    warnings.extend(_design_warnings(experiment, plan, arms, horizon, comparisons, state))

    return ABResults(
        **_header(experiment, traffic, state),
        arms=tuple(arm_result(arm, row_of[arm.pk]) for arm in arms),
        chosen_metrics=tuple(chosen_metrics(experiment)),
        daily=daily(experiment, arms, traffic),
        lift_history=lift_history(experiment, arms, traffic, n_stars),
        comparisons=tuple(comparisons),
        multiple_testing=multiple_testing,
        srm=srm,
        warnings=tuple(warnings),
        bandit=bandit,
    )


def _design_warnings(
    experiment: Experiment,
    plan: Any,
    arms: list[Arm],
    horizon: Mapping[int, Horizon],
    comparisons: list[Comparison],
    state: RollupState | None,
) -> list[ResultWarning]:
    """The warnings about the design and the data (codes in the module docstring), in that order."""
    out = []
    behind = [h.note for h in horizon.values() if h.behind_plan]
    if behind and experiment.status in _FINISHED and experiment.source == Experiment.Source.PLATFORM:
        if experiment.analysis_method == "sequential":
            consequence = "the always-valid verdict stays valid, but the experiment has less power than planned"
        else:
            consequence = "the fixed-horizon verdict needs the plan's sample size (or a recorded early read)"
        out.append(ResultWarning("stopped_early", f"stopped before the plan's sample size ({behind[0]}): "
                                 f"{consequence}"))  # fmt: skip
    elif behind and experiment.status in (Experiment.Status.RUNNING, Experiment.Status.PAUSED):
        out.append(ResultWarning("before_plan", f"the plan's sample size is not reached yet ({behind[0]})"))
    if isinstance(plan, Plan) and plan.days is not None and plan.days > UNDERPOWERED_DAYS:
        out.append(ResultWarning("underpowered", f"the plan needs {plan.days:,} days at {plan.daily_users:,} users a "
                                 f"day (more than {UNDERPOWERED_DAYS}): detect a larger effect, send more traffic or "
                                 "accept a longer test"))  # fmt: skip
    versions: dict[int, list[str]] = {}
    for arm in arms:
        if arm.variant_id is not None:
            versions.setdefault(arm.variant_id, []).append(arm.name)
    for names in versions.values():
        if len(names) > 1:
            out.append(ResultWarning("same_variant", f"arms {' and '.join(names)} serve the same variant "
                                     "version: an A/A test, fine when intended (it checks the set-up, not a "
                                     "change)"))  # fmt: skip
    breached = [f"{g.metric} ({comp.arm})" for comp in comparisons for g in comp.guardrails if g.status == "breached"]
    if breached:
        out.append(ResultWarning("guardrail_breached", f"guardrail breached: {', '.join(breached)} harmed beyond "
                                 f"the tolerance of {experiment.guardrail_tolerance:.1%}"))  # fmt: skip
    if state and state.unattributed_events:
        out.append(ResultWarning("unattributed_events", f"{state.unattributed_events:,} events of users without an "
                                 "exposure were not counted"))  # fmt: skip
    return out


def _as_of(state: RollupState | None) -> AsOf:
    """How far the rollups have folded (the results are as of then)."""
    return AsOf(
        event_watermark=state.event_watermark if state else 0,
        folded_at=state.folded_at.isoformat() if state and state.folded_at else None,
        folded_events=state.folded_events if state else 0,
        unattributed_events=state.unattributed_events if state else 0,
    )


def _header(experiment: Experiment, traffic: str, state: RollupState | None) -> dict[str, Any]:
    """The fields every design's results start with (``ExperimentResults``)."""
    return {
        "experiment": experiment.key,
        "design": str(experiment.design),
        "status": str(experiment.status),
        "source": str(experiment.source),
        "primary_metric": str(experiment.primary_metric),
        "secondary_metrics": tuple(experiment.secondary_metrics or []),
        "guardrail_metrics": tuple(experiment.guardrail_metrics or []),
        "guardrail_tolerance": experiment.guardrail_tolerance,
        "analysis_method": str(experiment.analysis_method),
        "alpha": experiment.alpha,
        "traffic": traffic,
        "as_of": _as_of(state),
    }


def _interleaving_results(experiment: Experiment, traffic: str) -> InterleavingResults:
    """An interleaving experiment's results: the A/B fields with nothing A/B-only in them (no per-arm user
    metrics, comparisons or SRM check: every exposed user sees both arms) and the `interleaving` block
    (analysis.services.interleaving_results)."""
    block = interleaving_block(experiment, traffic_filter(traffic))
    state = RollupState.objects.filter(pk=experiment.pk).first()
    # Every exposed user sees both arms; the A/B fold counts them all under the control (their exposure's arm).
    exposed = ArmRollup.objects.filter(experiment=experiment, **traffic_filter(traffic)).aggregate(
        users=Sum("exposed_users")
    )["users"]
    warnings = []
    if block.uncredited_clicks:
        warnings.append(ResultWarning("uncredited_clicks", f"{block.uncredited_clicks:,} clicks named an item their "
                                      "request did not show and were not credited"))  # fmt: skip
    team_a, team_b = teams(list(experiment.arms.all()))
    arms = (
        InterleavingArm(team_a.name, team_a.is_control, team_a.weight, "A", block.wins_a, block.clicks_a),
        InterleavingArm(team_b.name, team_b.is_control, team_b.weight, "B", block.wins_b, block.clicks_b),
    )
    return InterleavingResults(
        **_header(experiment, traffic, state),
        exposed_users=int(exposed or 0),
        arms=arms,
        daily={},
        lift_history={},
        comparisons=(),
        multiple_testing=MultipleTesting("holm", experiment.alpha),
        srm=SrmUnavailable("not applicable: every exposed user of an interleaving experiment sees both arms"),
        warnings=tuple(warnings),
        interleaving=block,
    )


def experiment_badges(experiment: Experiment, results: ExperimentResults | None = None) -> list[Badge]:
    """The verdict badges of `experiment` exactly as the results page shows them (none for a draft), for
    the lists that show many experiments (home, experiment list). Pass `results` when already computed."""
    if experiment.status == Experiment.Status.DRAFT and results is None:
        return []
    results = results if results is not None else experiment_results(experiment)
    plan = experiment_plan(experiment) if isinstance(results, InterleavingResults) else None  # sessions
    return badges(results, plan.sessions if isinstance(plan, InterleavingPlan) else None)
