"""Numerical engine of the exact Beta-Binomial test: two Beta posteriors on fixed spectral grids.

The formulas, the choice of grids and the sources are in ``bayesian.py``'s module docstring; this
module only implements them. Everything is a handful of vectorised numpy calls on arrays of a few
hundred numbers, so a whole test (chance to win, both losses, three lift quantiles) costs well under
a millisecond and needs no scipy.special.betainc (which costs 2-15 microseconds per call at large
counts) and no adaptive quadrature.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.polynomial import chebyshev, legendre
from scipy import special

from ._arrays import FloatArray
from .errors import DegenerateDataError

__all__ = ["BetaPosterior", "chance_and_losses", "compare", "log_ratio_quantiles"]

# Each panel ends where the log density has dropped this many nats below the mode: the density there
# is e^-36 = 2.3e-16 of its peak and the mass beyond it below 1e-15 for every shape (tails decay at
# least exponentially in logit space).
_DROP = 36.0
# Chebyshev degrees tried per panel, cheapest first; the first whose trailing coefficients are below
# _TAIL (relative to the peak density, which is 1 by construction) is kept. Large counts (near-normal
# posteriors) stop at 40; a Beta(1, b) (no success yet) needs ~80; a Beta(0.1, b) ~160.
_DEGREES = (40, 56, 80, 112, 160, 224, 320, 448)
_TAIL = 1e-12
_TAIL_TERMS = 4
# Outer Gauss-Legendre nodes per panel, on top of half the inner degree (exact for polynomials of
# degree 2 m - 1, i.e. the outer density times a smooth factor, with room to spare).
_EXTRA_GAUSS = 6
# Largest spacing of the outer nodes (in the middle of a panel, where Gauss-Legendre nodes are
# sparsest: pi / 2 times the panel length over m), in standard deviations of the inner arm.
_OUTER_SPACING = 0.75
_MAX_NODES = 4096
# Outer nodes whose normalised weight is below this carry no information at double precision.
_NEGLIGIBLE = 1e-18
# Row layout of BetaPosterior.table's source: cumulative integrals of g (panels 0, 1) and of x g
# (panels 0, 1), densities (panels 0, 1), the normaliser; each panel takes CDF, partial mean, density, 1.
# First degree to try by min(a, b) (the chopping test decides; this only saves failed attempts).
_FIRST_DEGREE = ((40.0, 40), (8.0, 56), (2.0, 80), (0.5, 112), (0.0, 160))
_TABLE_ROWS = np.array([0, 2, 4, 6, 1, 3, 5, 6])
_SEARCH_COLUMNS = np.array([0, 2, 3])  # of _inner_values: G, dq/du g, the S'' integrand
# Quantile search: Halley steps until one is below this many standard deviations sd of log(T / C),
# the error after it being ~ step^3 / sd^2 <= 3e-11 sd (Newton steps: below _STEP_TOLERANCE sd, the
# error after it ~ step^2 / sd <= 1e-10 sd); at most _MAX_STEPS.
_HALLEY_TOLERANCE = 3e-4
_STEP_TOLERANCE = 1e-5
_ROUGH_TOLERANCE = 1e-11
_MAX_STEPS = 100


@dataclass(frozen=True, slots=True)
class _Rule:
    """Chebyshev-Lobatto interpolation and cumulative integration of degree n on [-1, 1]."""

    nodes: FloatArray  # t_j = -cos(pi j / n), ascending
    barycentric: FloatArray  # (-1)^j, halved at both ends (Berrut & Trefethen 2004)
    # values @ integrals -> [cumulative integral from -1 to each node | last _TAIL_TERMS coefficients]
    integrals: FloatArray
    # distance from the mode, in units of the panel's half-length, of each node on both panels
    distances: FloatArray


@functools.cache
def _rule(n: int) -> _Rule:
    j = np.arange(n + 1)
    nodes = -np.cos(np.pi * j / n)
    # Values -> Chebyshev coefficients (the discrete cosine transform written as a matrix).
    halve = np.ones(n + 1)
    halve[[0, -1]] = 0.5
    to_coefficients = (2.0 / n) * (halve[:, None] * chebyshev.chebvander(nodes, n).T * halve[None, :])
    cumulative = chebyshev.chebvander(nodes, n + 1) @ chebyshev.chebint(np.eye(n + 1), lbnd=-1, axis=0)
    integrals = np.hstack([(cumulative @ to_coefficients).T, to_coefficients[-_TAIL_TERMS:].T])
    barycentric = np.where(j % 2 == 0, 1.0, -1.0)
    barycentric[[0, -1]] *= 0.5
    return _Rule(
        nodes=nodes,
        barycentric=barycentric,
        integrals=np.ascontiguousarray(integrals),
        distances=np.stack([1.0 - nodes, 1.0 + nodes]),
    )


@functools.cache
def _gauss(m: int) -> tuple[FloatArray, FloatArray]:
    """m Gauss-Legendre nodes as distances from the mode on both panels (half-length units), weights."""
    nodes, weights = legendre.leggauss(m)
    return np.stack([1.0 - nodes, 1.0 + nodes]), np.stack([weights, weights])


def _panel_end(k: float, c: float, total: float, curvature: float) -> float:
    """Distance s > 0 from the mode (logit scale) where the log density has dropped by _DROP.

    On one side of the mode the drop is phi(s) = k s + total log1p(-c (1 - e^-s)), with (k, c) =
    (a, a / (a + b)) on the left and (b, b / (a + b)) on the right: convex and increasing, with
    phi(0) = phi'(0) = 0. Start from the normal approximation s0 = sqrt(2 _DROP / curvature). If it
    falls short, extend it along the chord (phi(s) / s grows with s, so the chord overshoots the
    root); if it overshoots, halve it while it still overshoots (a side where phi grows like e^s, e.g.
    the left of Beta(1e6, 0.1), is much shorter than s0). Then Newton steps, which from above the root
    of a convex function stay above it: the panel always covers the drop.
    """

    def drop(s: float) -> float:
        return k * s + total * math.log1p(c * math.expm1(-s))

    s = math.sqrt(2.0 * _DROP / curvature)
    value = drop(s)
    if value < _DROP:
        s *= _DROP / value
    else:
        while drop(0.5 * s) >= _DROP:
            s *= 0.5
    for _ in range(3):
        e = math.exp(-s)
        s -= (drop(s) - _DROP) / (k - total * c * e / (1.0 + c * (e - 1.0)))
    return s


class BetaPosterior:
    """Beta(a, b) in the logit coordinate y = log(x / (1 - x)), where its density

        g(y) = x^a (1 - x)^b / B(a, b)

    is smooth, unimodal and log-concave for every a, b > 0, with mode y* = log(a / b). The support
    is cut where log g has dropped by _DROP, and split at the mode into two panels; on each, g and
    x g are interpolated at Chebyshev-Lobatto points and integrated cumulatively (spectral
    integration), which gives the CDF G and the partial mean M(y) = integral_{-inf}^y x g at every
    node, normalised by the computed total so the constant B(a, b) is never needed. The log density
    is evaluated relative to the mode in a form whose rounding error stays near 1e-16 min(a, b) |y - y*|
    (``__init__``), where differences of log(x) and log(1 - x) would lose ~1e-16 (a + b) |y - y*|.
    """

    __slots__ = (
        "_affine",
        "_first_degree",
        "_outer",
        "_panel_rows",
        "bounds",
        "log_sd",
        "log_variance",
        "logit_sd",
        "logit_variance",
        "mean",
        "mode",
        "parameters",
        "rule",
        "table",
        "total_mean",
    )
    # Set by _tabulate: the interpolation table, the mean from the grid, the Chebyshev rule used.
    table: FloatArray
    total_mean: float
    rule: _Rule

    def __init__(self, a: float, b: float, tabulate: bool = True) -> None:
        self.parameters = (a, b)
        total = a + b
        self.mean = a / total
        self.mode = math.log(a / b)
        # Approximate variances of logit(X) and log(X) (delta method), to choose the outer variable.
        var = a * b / (total * total * (total + 1.0))
        self.logit_variance = var / (self.mean * (1.0 - self.mean)) ** 2
        self.logit_sd = math.sqrt(self.logit_variance)
        self.log_variance = var / (self.mean * self.mean)
        self.log_sd = math.sqrt(self.log_variance)
        curvature = a * b / total  # -(log g)'' at the mode
        half_left = 0.5 * _panel_end(a, self.mean, total, curvature)
        half_right = 0.5 * _panel_end(b, 1.0 - self.mean, total, curvature)
        self.bounds = (self.mode - 2.0 * half_left, self.mode + 2.0 * half_right)
        # log g(y* + d) - log g(y*) = a d - (a + b) log1p(mu expm1(d)) = -b d - (a + b) log1p((1 - mu) expm1(-d)):
        # two forms of one function whose cancelling terms are of size a |d| and b |d|. Use the smaller,
        # as k t - (a + b) log1p(c expm1(t)) with t = +-d (so t = +-s on each panel, s = |d|).
        k, c, sign = (a, self.mean, 1.0) if a <= b else (b, 1.0 - self.mean, -1.0)
        # Per panel (left, right): half-length, sign of t, k, c, a + b, side of the mode, mode.
        self._panel_rows = np.array(
            [
                [half_left, -sign, k, c, total, -1.0, self.mode],
                [half_right, sign, k, c, total, 1.0, self.mode],
            ]
        )
        self._affine = np.array([[1.0 / half_left, 1.0], [1.0 / half_right, -1.0]])
        self._outer: dict[int, _Outer] = {}
        # The degree to try first: near-normal posteriors need 40, skewed ones (few successes) more.
        self._first_degree = next(d for least, d in _FIRST_DEGREE if min(a, b) >= least)
        if tabulate:
            _tabulate_all([self])

    @classmethod
    def pair(cls, first: tuple[float, float], second: tuple[float, float]) -> tuple[BetaPosterior, BetaPosterior]:
        """Two posteriors, tabulated together (one set of array operations for both)."""
        one, other = cls(*first, tabulate=False), cls(*second, tabulate=False)
        _tabulate_all([one, other])
        return one, other

    def _panels(self, distances: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Logit values and densities (relative to the mode) at the given distances on both panels."""
        return _panel_values(self._panel_rows, distances)

    def interpolate(self, q: FloatArray) -> FloatArray:
        """(CDF, partial mean, density) at logit values q (1-D), shape (n_q, 3); clamped outside the support.

        Barycentric formula p(t) = sum_j (w_j / (t - t_j)) f_j / sum_j w_j / (t - t_j) on the panel
        holding each point, for all points and the four tabulated columns in one matrix product. A
        point exactly on a node gets 1e-300 added to its zero gap: its term then dominates both sums
        and the formula returns the node's value.
        """
        rule = self.rule
        offset = q - self.mode
        right = (offset >= 0.0).astype(np.intp)
        # Panel coordinate t in [-1, 1]: offset / h_left + 1 on the left, offset / h_right - 1 on the right.
        affine = self._affine[right]
        t = np.minimum(np.maximum(offset * affine[:, 0] + affine[:, 1], -1.0), 1.0)
        gaps = t[:, None] - rule.nodes
        gaps += 1e-300
        np.divide(rule.barycentric, gaps, out=gaps)
        both = (gaps @ self.table).reshape(-1, 2, 4)[np.arange(q.size), right]
        result: FloatArray = both[:, :3] / both[:, 3:]
        return result

    def outer_rule(self, logit_scale: float = math.inf, log_scale: float = math.inf) -> _Outer:
        """Gauss-Legendre nodes (logit values) and normalised weights g(y_i) w_i on both panels.

        m nodes per panel integrate this density times a smooth factor of degree up to 2 m - 1: at
        least n / 2 + _EXTRA_GAUSS for the density itself, and enough to resolve the other factor
        (the inner arm's CDF) wherever its rise falls: nodes at most _OUTER_SPACING times the width
        of that rise apart, `logit_scale` in logit units, `log_scale` in log(x) units, which shrink by
        d log x / dy = 1 - x.
        """
        (low, high), mode = self.bounds, self.mode
        m = max(
            self.rule.nodes.size // 2 + _EXTRA_GAUSS,
            _nodes_for(low, mode, logit_scale, False),
            _nodes_for(mode, high, logit_scale, False),
            _nodes_for(low, mode, log_scale, True),
            _nodes_for(mode, high, log_scale, True),
        )
        if m not in self._outer:
            distances, gauss_weights = _gauss(m)
            y, density = self._panels(distances)
            weights = (density * gauss_weights * self._panel_rows[:, :1]).reshape(-1)
            keep = weights > _NEGLIGIBLE * weights.max()
            self._outer[m] = _Outer.of(y.reshape(-1)[keep], weights[keep] / weights[keep].sum())
        return self._outer[m]

    def rule_on(self, start: float, end: float, scale: float, graded: bool) -> tuple[FloatArray, FloatArray]:
        """Nodes on [start, end] (logit) and weights w_i g(y_i), with g interpolated (not normalised to 1).

        Gauss-Legendre, or with `graded` the tau^3 rule clustered at `end` (``_graded``), with twice
        the nodes since tau^3 stretches the spacing near `start` up to ~2x. Node counts as in
        ``outer_rule`` on the log scale.
        """
        m = max(self.rule.nodes.size // 2 + _EXTRA_GAUSS, _nodes_for(start, end, scale, True))
        if graded:
            nodes, factors = _graded(2 * m)
            y = end - (end - start) * nodes
        else:
            distances, gauss_weights = _gauss(m)
            y = start + 0.5 * (end - start) * distances[1]
            factors = 0.5 * gauss_weights[1]
        return y, factors * (end - start) * self.interpolate(y)[:, 2]


def _panel_values(rows: FloatArray, distances: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Logit values y and densities g(y) / g(y*) on panels described by `rows` (BetaPosterior._panel_rows
    of one or more posteriors), at distances from the mode in units of each panel's half-length."""
    half, sign, k, c, total, side, mode = rows.T[:, :, None]
    s = distances * half
    t = s * sign
    density = np.exp(k * t - total * np.log1p(c * np.expm1(t)))
    return mode + side * s, density


@functools.cache
def _repeated(degree: int, copies: int) -> FloatArray:
    return np.concatenate([_rule(degree).distances] * copies)


def _tabulate_all(posteriors: list[BetaPosterior]) -> None:
    """Tabulate each posterior at the first degree of _DEGREES (from its _first_degree on) whose
    trailing Chebyshev coefficients are below _TAIL, those due at the same degree together."""
    pending = list(posteriors)
    for degree in _DEGREES:
        due = [p for p in pending if p._first_degree <= degree]
        if due:
            done = _tabulate(due, degree)
            pending = [p for p in pending if p not in done]
        if not pending:
            return
    a, b = pending[0].parameters
    raise DegenerateDataError(
        f"the Beta({a:g}, {b:g}) posterior is too diffuse for the exact computation (its logit has "
        "tails longer than the largest grid resolves); use a prior with both parameters >= 0.1"
    )


def _tabulate(posteriors: list[BetaPosterior], degree: int) -> list[BetaPosterior]:
    """Tabulate the posteriors at this degree, all in the same array operations; return those resolved.

    Per panel: g and x g at the Chebyshev-Lobatto points, integrated cumulatively (one matrix
    product also yields the trailing coefficients), the right panel continuing the left one's totals.
    """
    rule, count = _rule(degree), len(posteriors)
    n = rule.nodes.size
    rows = posteriors[0]._panel_rows if count == 1 else np.concatenate([p._panel_rows for p in posteriors])
    y, density = _panel_values(rows, _repeated(degree, count))
    integrated = np.concatenate([density, special.expit(y) * density]) @ rule.integrals  # (4 count, n + tail)
    tails = np.abs(integrated[: 2 * count, n:]).reshape(count, -1).max(axis=1).tolist()
    sums = integrated[:, :n] * np.concatenate([rows[:, :1], rows[:, :1]])  # CDF rows, then partial-mean rows
    sums[1::2] += sums[0::2, -1:]  # each right panel continues its left panel
    done = []
    for i, posterior in enumerate(posteriors):
        if tails[i] > _TAIL:
            continue
        cdf, partial, panel_density = (
            sums[2 * i : 2 * i + 2],
            sums[2 * (count + i) : 2 * (count + i) + 2],
            density[2 * i : 2 * i + 2],
        )
        norm = float(cdf[1, -1])
        # Columns per panel: CDF, partial mean, density, 1 (the barycentric denominator); the density
        # is set to exactly 0 at both outer ends (it is e^-36 there), so clamped queries carry none.
        table = np.concatenate([cdf, partial, panel_density, np.full((1, n), norm)])[_TABLE_ROWS] / norm
        table[2, 0] = table[6, -1] = 0.0
        posterior.table = np.ascontiguousarray(table.T)
        posterior.total_mean = float(partial[1, -1]) / norm
        posterior.rule = rule
        done.append(posterior)
    return done


class _Outer(NamedTuple):
    """An outer quadrature rule: logit nodes, weights, and x = sigmoid(y), log x, weights * x, sum of those."""

    y: FloatArray
    weights: FloatArray
    x: FloatArray
    log_x: FloatArray
    weighted_x: FloatArray
    mean_x: float

    @classmethod
    def of(cls, y: FloatArray, weights: FloatArray) -> _Outer:
        x = special.expit(y)
        weighted_x = weights * x
        return cls(y, weights, x, special.log_expit(y), weighted_x, float(weighted_x.sum()))


def _softplus(z: float) -> float:
    """log(1 + e^z) without overflow."""
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def _nodes_for(start: float, end: float, scale: float, log_scale: bool) -> int:
    """Gauss-Legendre nodes on [start, end] (logit) whose spacing, pi / 2 (end - start) / m in the
    middle, is at most _OUTER_SPACING `scale`, measured in log(x) units if `log_scale` (on average:
    the length is log x(end) - log x(start); where 1 - x is larger than that average, at the far end
    of a tail, the density being integrated is negligible)."""
    length = _softplus(-start) - _softplus(-end) if log_scale else end - start
    m = math.ceil(0.5 * math.pi * length / (_OUTER_SPACING * scale))
    if m > _MAX_NODES:  # pragma: no cover - bounded far below this for priors >= 0.1
        raise DegenerateDataError(f"the two posteriors' scales are too far apart for the quadrature ({m} nodes)")
    return m


def _inner_values(inner: BetaPosterior, rule: _Outer, shifts: list[float]) -> FloatArray:
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
    treatment: BetaPosterior, control: BetaPosterior, rule: _Outer, at_nodes: FloatArray
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


@functools.cache
def _graded(m: int) -> tuple[FloatArray, FloatArray]:
    """Gauss-Legendre on [0, 1] after tau -> tau^3: nodes tau^3 and weights w 3 tau^2 (sum 1).

    Used on an interval whose upper end B is a singular point of the integrand: with
    v = B - (B - A) tau^3, an endpoint factor (B - v)^beta becomes tau^(3 beta + 2) d tau, smooth
    enough for Gauss-Legendre (error ~ m^-(6 beta + 6) instead of m^-(2 beta + 2)).
    """
    nodes, weights = legendre.leggauss(m)
    tau = 0.5 * (nodes + 1.0)
    return tau**3, 1.5 * weights * tau * tau


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
        rule = _Outer.of(np.concatenate([piece[0] for piece in pieces]), np.concatenate([piece[1] for piece in pieces]))
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
