"""Comparing two Beta posteriors: chance to win, expected losses and the quantiles of T / C.

The formulas and sources are in ``bayesian.py``'s module docstring; the posteriors' tables and
quadrature rules come from ``_beta_posterior``.
"""

from __future__ import annotations

import math

import numpy as np

from ._arrays import FloatArray
from ._beta_posterior import BetaPosterior, Outer
from .errors import DegenerateDataError

__all__ = ["chance_and_losses", "compare", "log_ratio_quantiles"]

_SEARCH_COLUMNS = np.array([0, 2, 3])  # of _inner_values: G, dq/du g, the S'' integrand
# Quantile search: Halley steps until one is below this many standard deviations sd of log(T / C),
# the error after it being ~ step^3 / sd^2 <= 3e-11 sd (Newton steps: below _STEP_TOLERANCE sd, the
# error after it ~ step^2 / sd <= 1e-10 sd); at most _MAX_STEPS.
_HALLEY_TOLERANCE = 3e-4
_STEP_TOLERANCE = 1e-5
_ROUGH_TOLERANCE = 1e-11
_MAX_STEPS = 100


def _inner_values(inner: BetaPosterior, rule: Outer, shifts: list[float]) -> FloatArray:
    """At q = logit(z), z = e^u x_i, for each shift u: shape (shifts, nodes, 4),

        G_I(q), M_I(q), g_I(q) / (1 - z), g_I(q) (a_I - (a_I + b_I - 1) z) / (1 - z)^2,

    the last two being dq/du g_I and the integrand of S''(u) (``_scaled_cdf``; d log g / dy = a - (a + b) x
    for a Beta(a, b) in logit). z is kept below 1 (at 1 and beyond, q clamps to the inner support's end:
    CDF 1, density 0, since the table's density is 0 there). u = 0 gives q = y_i, the values P(T > C)
    and the losses need.
    """
    log_z = np.minimum(rule.log_x + np.array(shifts)[:, None], -1e-300)
    one_minus = -np.expm1(log_z)
    values = np.empty((len(shifts), rule.y.size, 4))
    values[..., :3] = inner.interpolate((log_z - np.log(one_minus)).reshape(-1)).reshape(len(shifts), -1, 3)
    values[..., 2] /= one_minus
    a, b = inner.parameters
    values[..., 3] = values[..., 2] * (a - (a + b - 1.0) * (1.0 - one_minus)) / one_minus
    return values


def _outer_for_chance(treatment: BetaPosterior, control: BetaPosterior) -> tuple[BetaPosterior, BetaPosterior]:
    """(outer, inner): the outer quadrature runs over the posterior narrower in logit."""
    return (control, treatment) if control.logit_variance <= treatment.logit_variance else (treatment, control)


def _outer_for_ratio(treatment: BetaPosterior, control: BetaPosterior) -> tuple[BetaPosterior, BetaPosterior]:
    """(outer, inner) for T / C: the posterior narrower on the log scale is the outer one."""
    return (control, treatment) if control.log_variance <= treatment.log_variance else (treatment, control)


def _chance(
    treatment: BetaPosterior, control: BetaPosterior, rule: Outer, at_nodes: FloatArray
) -> tuple[float, float, float]:
    """(P(T > C), E[max(T - C, 0)], E[max(C - T, 0)]) from the inner arm's CDF and partial mean at the outer nodes.

    With O the outer arm (nodes o_i, weights W_i summing to 1) and I the inner one:
        P(I < O)        = sum_i W_i G_I(o_i)
        E[(I - O)+]     = sum_i W_i (M_I(inf) - M_I(o_i) - x_i (1 - G_I(o_i)))
        E[(O - I)+]     = sum_i W_i (x_i G_I(o_i) - M_I(o_i)),   x_i = sigmoid(o_i).
    The weights sum to 1, so P(T > C) + P(C > T) = 1 exactly; identical posteriors give exactly 1/2
    and equal losses (their mean), as symmetry demands, rather than 1/2 up to rounding.
    """
    outer, inner = _outer_for_chance(treatment, control)
    below_inner, partial, _ = (rule.weights @ at_nodes).tolist()  # E[G_I], E[M_I]
    x_cdf = float(rule.weighted_x @ at_nodes[:, 0])  # E[x G_I]
    above = inner.total_mean - partial - rule.mean_x + x_cdf  # E[(I - O)+]
    below = x_cdf - partial  # E[(O - I)+]
    if treatment.parameters == control.parameters:
        return 0.5, 0.5 * (above + below), 0.5 * (above + below)
    if outer is control:
        return 1.0 - below_inner, above, below
    return below_inner, below, above


def chance_and_losses(treatment: BetaPosterior, control: BetaPosterior) -> tuple[float, float, float]:
    """(P(T > C), E[max(T - C, 0)], E[max(C - T, 0)]) by one outer quadrature over the narrower arm (``_chance``)."""
    outer, inner = _outer_for_chance(treatment, control)
    rule = outer.outer_rule(logit_scale=inner.logit_sd)
    return _chance(treatment, control, rule, _inner_values(inner, rule, [0.0])[0, :, :3])


def compare(
    treatment: BetaPosterior, control: BetaPosterior, probabilities: list[float], guess: list[float], sd: float
) -> tuple[tuple[float, float, float], list[float]]:
    """``chance_and_losses`` and ``log_ratio_quantiles`` together.

    When one posterior is the outer variable of both (the usual case) and no starting guess needs the
    split rule, they share one outer rule (with enough nodes for both) and the chance, the losses and
    the quantile search's first step come from a single interpolation of the inner arm.
    """
    outer, inner = _outer_for_chance(treatment, control)
    sign = 1.0 if outer is control else -1.0
    shifts = [sign * w for w in guess]
    if _outer_for_ratio(treatment, control)[0] is not outer or not all(_plain(outer, u) for u in shifts):
        return chance_and_losses(treatment, control), log_ratio_quantiles(treatment, control, probabilities, guess, sd)
    rule = outer.outer_rule(logit_scale=inner.logit_sd, log_scale=inner.log_sd)
    values = _inner_values(inner, rule, [0.0, *shifts])
    first = [*(values[1:, :, _SEARCH_COLUMNS].transpose(2, 0, 1) @ rule.weights).tolist(), [1.0] * len(shifts)]
    chance = _chance(treatment, control, rule, values[0, :, :3])
    return chance, log_ratio_quantiles(treatment, control, probabilities, guess, sd, first=first)


def _plain(outer: BetaPosterior, u: float) -> bool:
    """Whether e^u x stays below 1 on all of the outer support (no split at v_u = logit(e^-u) needed)."""
    return u <= 0.0 or -u - math.log(-math.expm1(-u)) >= outer.bounds[1]


def _scaled_cdf(outer: BetaPosterior, inner: BetaPosterior, shifts: list[float]) -> list[list[float]]:
    """[S(u), S'(u), S''(u), smooth] per shift u, S(u) = P(I <= e^u O) (O the outer arm, I the inner one).

    S(u) = integral g_O(v) G_I(q) dv with q = logit(z), z = e^u x(v), x(v) = sigmoid(v); dq/du = 1 / (1 - z),
    d2q/du2 = z / (1 - z)^2, so S'(u) = integral g_O g_I(q) / (1 - z) dv and
    S''(u) = integral g_O g_I(q) (a_I - (a_I + b_I - 1) z) / (1 - z)^2 dv (``_inner_values``).

    For u > 0 the inner argument reaches 1 at v_u = logit(e^-u), beyond which G_I = 1; near v_u,
    1 - G_I behaves like (v_u - v)^b_I, a kink that a rule across it would resolve poorly (b_I is
    small for few failures). When v_u lies inside O's support the integral is split
    there: O's mass above v_u counts in full, and [lower end, v_u] gets a graded rule (``_graded``).
    S is then not smooth in u (its higher derivatives involve I's density at 1, infinite when b_I < 1):
    `smooth` is 0 for such shifts, 1 for the others.
    The shared outer rule serves every other shift, all in one interpolation. G_I(logit(e^u x)) is
    the inner arm's CDF on the log scale at u + log x, so it rises over ~I's sd of log x.
    """
    result = [[0.0] * len(shifts) for _ in range(3)] + [[1.0] * len(shifts)]  # S, S', S'', smooth (1) per shift
    plain = [j for j, u in enumerate(shifts) if _plain(outer, u)]
    if plain:
        rule = outer.outer_rule(log_scale=inner.log_sd)
        values = _inner_values(inner, rule, [shifts[j] for j in plain])
        sums_plain = (values[:, :, _SEARCH_COLUMNS].transpose(2, 0, 1) @ rule.weights).tolist()
        for row, sums in zip(result[:3], sums_plain, strict=True):
            for j, value in zip(plain, sums, strict=True):
                row[j] = value
    for j in sorted(set(range(len(shifts))) - set(plain)):
        u = shifts[j]
        end = -u - math.log(-math.expm1(-u))  # v_u = logit(e^-u)
        start = outer.bounds[0]
        result[3][j] = 0.0  # S is not smooth in u here: no Halley step, no early stop (log_ratio_quantiles)
        if end <= start:  # the inner argument passes 1 on all of O's support
            result[0][j], result[1][j], result[2][j] = 1.0, 0.0, 0.0
            continue
        pieces = [outer.rule_on(start, end, inner.log_sd, graded=True)]
        if start < outer.mode < end:  # the left panel whole, the graded rule from the mode on
            pieces = [
                outer.rule_on(start, outer.mode, inner.log_sd, graded=False),
                outer.rule_on(outer.mode, end, inner.log_sd, graded=True),
            ]
        rule = Outer.of(np.concatenate([piece[0] for piece in pieces]), np.concatenate([piece[1] for piece in pieces]))
        below, slope, bend = (rule.weights @ _inner_values(inner, rule, [u])[0][:, _SEARCH_COLUMNS]).tolist()
        above = 1.0 - float(outer.interpolate(np.array([end]))[0, 0])
        result[0][j], result[1][j], result[2][j] = below + above, slope, bend
    return result


def log_ratio_quantiles(
    treatment: BetaPosterior,
    control: BetaPosterior,
    probabilities: list[float],
    guess: list[float],
    sd: float,
    first: list[list[float]] | None = None,
) -> list[float]:
    """Quantiles w_p of W = log(T / C), all at once, by safeguarded Halley steps from `guess`.

    With C as the outer variable (the narrower on the log scale) F(w) = P(T <= e^w C) = S(w); with T
    outer, F(w) = P(C >= e^-w T) = 1 - S(-w). Either way F'(w) = S'(+-w) and F''(w) = +-S''(+-w)
    (``_scaled_cdf``; `first`, if given, is [S, S', S''] at the guess). Halley's step
    d = r / F' / (1 - r F'' / (2 F'^2)), r = F(w) - p, converges cubically: after a step d the error
    is ~ d^3 / sd^2, so the search ends once every step is below _HALLEY_TOLERANCE sd (after taking
    it). Where the correction is large (far from the root) it takes Newton's step r / F' instead, with
    the Newton tolerance. Both bounds assume F smooth near the root; where it is not (``_scaled_cdf``'s
    split), Newton steps run until one is below _ROUGH_TOLERANCE sd, near the rounding of F. Each
    quantile keeps a bracket [low, high] of its root; a step that leaves it is replaced by bisection
    (or, while one side is still open, by a step of `sd` doubling each time).
    """
    outer, inner = _outer_for_ratio(treatment, control)
    sign = 1.0 if outer is control else -1.0
    w = list(guess)
    low = [-math.inf] * len(w)
    high = [math.inf] * len(w)
    spread = [sd] * len(w)
    for _ in range(_MAX_STEPS):
        mass, slope, bend, smooth = first or _scaled_cdf(outer, inner, [sign * v for v in w])
        first = None
        converged = True
        for i, p in enumerate(probabilities):
            residual = (mass[i] if sign > 0 else 1.0 - mass[i]) - p
            if residual < 0.0:
                low[i] = w[i]
            elif residual > 0.0:
                high[i] = w[i]
            step, tolerance = math.inf, (_STEP_TOLERANCE if smooth[i] else _ROUGH_TOLERANCE) * sd
            if slope[i] > 0.0:
                step = residual / slope[i]
                correction = 1.0 - 0.5 * step * sign * bend[i] / slope[i]
                if smooth[i] and 0.5 <= correction <= 2.0:
                    step, tolerance = step / correction, _HALLEY_TOLERANCE * sd
            if abs(step) <= tolerance:  # done; may round just past the bracket, whose ends carry noise too
                w[i] -= step
            elif low[i] < w[i] - step < high[i]:
                converged = False
                w[i] -= step
            else:
                converged = False
                if math.isinf(low[i]) or math.isinf(high[i]):
                    w[i] = low[i] + spread[i] if math.isinf(high[i]) else high[i] - spread[i]
                    spread[i] *= 2.0
                else:
                    w[i] = 0.5 * (low[i] + high[i])
        if converged:
            return w
    raise DegenerateDataError(  # pragma: no cover - bisection converges long before
        "the lift quantiles did not converge; the posteriors are too extreme for the computation"
    )
