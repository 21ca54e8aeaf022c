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

import numpy as np
from numpy.polynomial import chebyshev, legendre
from scipy import special

from ._arrays import FloatArray
from .errors import DegenerateDataError

__all__ = ["BetaPosterior", "chance_and_losses", "log_ratio_quantiles"]

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
_EXTRA_GAUSS = 8
# Largest spacing of the outer nodes (in the middle of a panel, where Gauss-Legendre nodes are
# sparsest: pi / 2 times the panel length over m), in standard deviations of the inner arm.
_OUTER_SPACING = 0.75
_MAX_NODES = 4096
# Outer nodes whose normalised weight is below this carry no information at double precision.
_NEGLIGIBLE = 1e-18
# Row layout of BetaPosterior.table's source: cumulative integrals of g (panels 0, 1) and of x g
# (panels 0, 1), densities (panels 0, 1), the normaliser; each panel takes CDF, partial mean, density, 1.
_PANEL_OF_ROW = np.array([0, 1, 0, 1])
_TABLE_ROWS = np.array([0, 2, 4, 6, 1, 3, 5, 6])
# Quantile search: Newton steps until one is below this many standard deviations of log(T / C) (the
# error after it is then of order step^2 ~ 1e-12 sd); at most _MAX_STEPS (bisection fallback).
_STEP_TOLERANCE = 1e-6
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
        "_outer",
        "_shape",
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

    def __init__(self, a: float, b: float) -> None:
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
        if a <= b:
            k, c, signs = a, self.mean, np.array([[-1.0], [1.0]])
        else:
            k, c, signs = b, 1.0 - self.mean, np.array([[1.0], [-1.0]])
        self._shape = (np.array([[half_left], [half_right]]), signs, k, c, total)
        self._outer: dict[int, tuple[FloatArray, FloatArray]] = {}
        for degree in _DEGREES:
            if self._tabulate(_rule(degree)):
                return
        raise DegenerateDataError(
            f"the Beta({a:g}, {b:g}) posterior is too diffuse for the exact computation (its logit has "
            "tails longer than the largest grid resolves); use a prior with both parameters >= 0.1"
        )

    def _panels(self, distances: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Logit values and densities (relative to the mode) at the given distances on both panels."""
        half, signs, k, c, total = self._shape
        s = distances * half
        t = s * signs
        density = np.exp(k * t - total * np.log1p(c * np.expm1(t)))
        s[0] *= -1.0
        s += self.mode
        return s, density

    def _tabulate(self, rule: _Rule) -> bool:
        n = rule.nodes.size
        y, density = self._panels(rule.distances)
        x = special.expit(y)
        rows = np.concatenate([density, x * density]) @ rule.integrals  # (4, n + _TAIL_TERMS)
        if np.abs(rows[:2, n:]).max() > _TAIL:
            return False
        sums = rows[:, :n] * self._shape[0][_PANEL_OF_ROW]  # cumulative integrals: CDF, then x g
        sums[1] += sums[0, -1]
        sums[3] += sums[2, -1]
        norm = sums[1, -1]
        # Columns per panel: CDF, partial mean, density, 1 (the barycentric denominator); the density
        # is set to exactly 0 at both outer ends (it is e^-36 there), so clamped queries carry none.
        table = np.concatenate([sums, density, np.full((1, n), norm)])[_TABLE_ROWS] / norm
        table[2, 0] = table[6, -1] = 0.0
        self.table = np.ascontiguousarray(table.T)
        self.total_mean = float(sums[3, -1] / norm)
        self.rule = rule
        return True

    def interpolate(self, q: FloatArray) -> FloatArray:
        """(CDF, partial mean, density) at logit values q, shape (n_q, 3); clamped outside the support.

        Barycentric formula p(t) = sum_j (w_j / (t - t_j)) f_j / sum_j w_j / (t - t_j) on the panel
        holding each point, for all points and the four tabulated columns in one matrix product. A
        point exactly on a node gets 1e-300 added to its zero gap: its term then dominates both sums
        and the formula returns the node's value.
        """
        rule = self.rule
        half = self._shape[0]
        offset = q - self.mode
        right = (offset >= 0.0).astype(np.intp)
        # Panel coordinate: offset / h_left + 1 on the left, offset / h_right - 1 on the right.
        scale = np.array([1.0 / half[0, 0], 1.0 / half[1, 0]])[right]
        t = np.minimum(np.maximum(offset * scale + (1 - 2 * right), -1.0), 1.0)
        gaps = t[:, None] - rule.nodes
        gaps += 1e-300
        np.divide(rule.barycentric, gaps, out=gaps)
        both = (gaps @ self.table).reshape(-1, 2, 4)[np.arange(q.size), right]
        result: FloatArray = both[:, :3] / both[:, 3:]
        return result

    def outer_rule(self, scale: float, log_scale: bool = False) -> tuple[FloatArray, FloatArray]:
        """Gauss-Legendre nodes (logit values) and normalised weights g(y_i) w_i on both panels.

        m nodes per panel integrate this density times a smooth factor of degree up to 2 m - 1: at
        least n / 2 + _EXTRA_GAUSS for the density itself, and enough to resolve the other factor
        (the inner arm's CDF) wherever its rise falls: nodes at most _OUTER_SPACING `scale` apart,
        `scale` being the width of that rise, in logit units or, with `log_scale`, in log(x) units,
        which shrink by d log x / dy = 1 - x (largest at each panel's lower end).
        """
        m = max(
            self.rule.nodes.size // 2 + _EXTRA_GAUSS,
            _nodes_for(self.bounds[0], self.mode, scale, log_scale),
            _nodes_for(self.mode, self.bounds[1], scale, log_scale),
        )
        if m not in self._outer:
            distances, gauss_weights = _gauss(m)
            y, density = self._panels(distances)
            weights = (density * gauss_weights * self._shape[0]).reshape(-1)
            keep = weights > _NEGLIGIBLE * weights.max()
            self._outer[m] = y.reshape(-1)[keep], weights[keep] / weights[keep].sum()
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


def _nodes_for(start: float, end: float, scale: float, log_scale: bool) -> int:
    """Gauss-Legendre nodes on [start, end] (logit) whose spacing, pi / 2 (end - start) / m in the
    middle, is at most _OUTER_SPACING `scale`, measured in log(x) units if `log_scale` (on average:
    the length is log x(end) - log x(start); where 1 - x is larger than that average, at the far end
    of a tail, the density being integrated is negligible)."""
    length = end - start
    if log_scale:
        length = float(np.logaddexp(0.0, -start) - np.logaddexp(0.0, -end))  # log sigmoid(end) - log sigmoid(start)
    m = math.ceil(0.5 * math.pi * length / (_OUTER_SPACING * scale))
    if m > _MAX_NODES:  # pragma: no cover - bounded far below this for priors >= 0.1
        raise DegenerateDataError(f"the two posteriors' scales are too far apart for the quadrature ({m} nodes)")
    return m


def chance_and_losses(treatment: BetaPosterior, control: BetaPosterior) -> tuple[float, float, float]:
    """(P(T > C), E[max(T - C, 0)], E[max(C - T, 0)]) by one outer quadrature over the narrower arm.

    With O the outer arm (nodes o_i, weights W_i summing to 1) and I the inner one:
        P(I < O)        = sum_i W_i G_I(o_i)
        E[(I - O)+]     = sum_i W_i (M_I(inf) - M_I(o_i) - x_i (1 - G_I(o_i)))
        E[(O - I)+]     = sum_i W_i (x_i G_I(o_i) - M_I(o_i)),   x_i = sigmoid(o_i).
    The weights sum to 1, so P(T > C) + P(C > T) = 1 exactly; identical posteriors give exactly 1/2
    and equal losses (their mean), as symmetry demands, rather than 1/2 up to rounding.
    """
    if control.logit_variance <= treatment.logit_variance:
        outer, inner, control_outer = control, treatment, True
    else:
        outer, inner, control_outer = treatment, control, False
    y, weights = outer.outer_rule(inner.logit_sd)
    x = special.expit(y)
    values = inner.interpolate(y)
    below_inner, partial, _ = (weights @ values).tolist()  # E[G_I], E[M_I]
    x_cdf = float((weights * x) @ values[:, 0])  # E[x G_I]
    mean_x = float(weights @ x)
    above = inner.total_mean - partial - mean_x + x_cdf  # E[(I - O)+]
    below = x_cdf - partial  # E[(O - I)+]
    if treatment.parameters == control.parameters:
        return 0.5, 0.5 * (above + below), 0.5 * (above + below)
    if control_outer:
        return 1.0 - below_inner, above, below
    return below_inner, below, above


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


def _scaled_cdf(outer: BetaPosterior, inner: BetaPosterior, shifts: list[float]) -> tuple[list[float], list[float]]:
    """S(u) = P(I <= e^u O) and S'(u) for each shift u (O the outer arm, I the inner one).

    S(u) = integral g_O(v) G_I(logit(e^u x(v))) dv and S'(u) = integral g_O(v) g_I(...) / (1 - e^u x(v)) dv,
    x(v) = sigmoid(v). For u > 0 the inner argument reaches 1 at v_u = logit(e^-u), beyond which
    G_I = 1; near v_u, 1 - G_I behaves like (v_u - v)^b_I, a kink that a rule across it would resolve
    poorly (b_I is small for few failures). When v_u lies inside O's support the integral is split
    there: O's mass above v_u counts in full, and [lower end, v_u] gets a graded rule (``_graded``).
    The shared outer rule serves every other shift, all in one interpolation.
    """
    sums, slopes = [0.0] * len(shifts), [0.0] * len(shifts)
    # G_I(logit(e^u x)) is the inner arm's CDF on the log scale at u + log x: it rises over ~I's log sd.
    scale = inner.log_sd
    plain = [j for j, u in enumerate(shifts) if u <= 0.0 or -u - math.log(-math.expm1(-u)) >= outer.bounds[1]]
    if plain:
        y, weights = outer.outer_rule(scale, log_scale=True)
        sums_plain, slopes_plain = _shifted(inner, y, weights, np.array([shifts[j] for j in plain]))
        for j, value, slope in zip(plain, sums_plain, slopes_plain, strict=True):
            sums[j], slopes[j] = value, slope
    for j in sorted(set(range(len(shifts))) - set(plain)):
        u = shifts[j]
        end = -u - math.log(-math.expm1(-u))  # v_u = logit(e^-u)
        start = outer.bounds[0]
        if end <= start:  # the inner argument passes 1 on all of O's support
            sums[j], slopes[j] = 1.0, 0.0
            continue
        pieces = [outer.rule_on(start, end, scale, graded=True)]
        if start < outer.mode < end:  # the left panel whole, the graded rule from the mode on
            pieces = [
                outer.rule_on(start, outer.mode, scale, graded=False),
                outer.rule_on(outer.mode, end, scale, True),
            ]
        y = np.concatenate([piece[0] for piece in pieces])
        weights = np.concatenate([piece[1] for piece in pieces])
        below, slope_below = _shifted(inner, y, weights, np.array([u]))
        above = 1.0 - float(outer.interpolate(np.array([end]))[0, 0])
        sums[j], slopes[j] = below[0] + above, slope_below[0]
    return sums, slopes


def _shifted(
    inner: BetaPosterior, y: FloatArray, weights: FloatArray, shifts: FloatArray
) -> tuple[list[float], list[float]]:
    """sum_i W_i G_I(logit(e^u x_i)) and sum_i W_i g_I(...) / (1 - e^u x_i), x_i = sigmoid(y_i), per shift u."""
    log_x = -np.logaddexp(0.0, -y)  # log sigmoid(y)
    # log of the inner arm's argument, kept below 0 (at 1 and beyond: CDF 1, density 0)
    log_z = np.minimum(log_x + shifts[:, None], -1e-300).reshape(-1)
    one_minus = -np.expm1(log_z)
    values = inner.interpolate(log_z - np.log(one_minus))
    values[:, 2] /= one_minus
    sums, slopes = (values[:, ::2].T.reshape(2, shifts.size, -1) @ weights).tolist()
    return sums, slopes


def log_ratio_quantiles(
    treatment: BetaPosterior, control: BetaPosterior, probabilities: list[float], guess: list[float], sd: float
) -> list[float]:
    """Quantiles w_p of W = log(T / C), all at once, by safeguarded Newton steps from `guess`.

    With C as the outer variable (the narrower on the log scale) F(w) = P(T <= e^w C) = S(w);
    with T outer, F(w) = P(C >= e^-w T) = 1 - S(-w); F'(w) = S'(+-w) (``_scaled_cdf``).
    Each quantile keeps a bracket [low, high] of its root; a Newton step that leaves it is replaced by
    bisection (or, while one side is still open, by a step of `sd` doubling each time). The search
    ends when every Newton step is below _STEP_TOLERANCE sd, after applying that last step.
    """
    if control.log_variance <= treatment.log_variance:
        outer, inner, sign = control, treatment, 1.0
    else:
        outer, inner, sign = treatment, control, -1.0
    w = list(guess)
    low = [-math.inf] * len(w)
    high = [math.inf] * len(w)
    spread = [sd] * len(w)
    tolerance = _STEP_TOLERANCE * sd
    for _ in range(_MAX_STEPS):
        mass, slope = _scaled_cdf(outer, inner, [sign * v for v in w])
        converged = True
        for i, p in enumerate(probabilities):
            residual = (mass[i] if sign > 0 else 1.0 - mass[i]) - p
            if residual < 0.0:
                low[i] = w[i]
            elif residual > 0.0:
                high[i] = w[i]
            step = residual / slope[i] if slope[i] > 0.0 else math.inf
            newton = w[i] - step
            if abs(step) <= tolerance:  # done; may round just past the bracket, whose ends carry noise too
                w[i] = newton
            elif low[i] < newton < high[i]:
                converged = False
                w[i] = newton
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
