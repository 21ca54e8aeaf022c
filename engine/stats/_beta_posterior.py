"""Beta posteriors on fixed spectral grids: the tables the exact Beta-Binomial test interpolates.

The formulas, the choice of grids and the sources are in ``bayesian.py``'s module docstring; this
module builds each posterior's CDF, partial mean and density tables and its outer quadrature rules,
``_beta_comparison`` compares two of them. Everything is a few vectorised numpy calls on arrays of a
few hundred numbers, with no scipy.special.betainc (2-15 microseconds a call at large counts) and
no adaptive quadrature.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.polynomial import chebyshev, hermite_e, legendre
from scipy import special

from ._arrays import FloatArray
from .errors import DegenerateDataError

__all__ = ["BetaPosterior", "Outer"]

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
_EXTRA_GAUSS = 4
# Largest spacing of the outer nodes (in the middle of a panel, where Gauss-Legendre nodes are
# sparsest: pi / 2 times the panel length over m), in standard deviations of the inner arm.
_OUTER_SPACING = 0.75
# Outer rule for near-normal posteriors (``BetaPosterior.outer_rule``).
_HERMITE_SHAPE = 30.0
_HERMITE_NODES = 32
_MAX_NODES = 4096  # per panel; far above what any prior >= 0.1 needs (a guard against runaway memory)
# Outer nodes whose normalised weight is below this carry no information at double precision.
_NEGLIGIBLE = 1e-15
# First degree to try by min(a, b) (the chopping test decides; this only saves failed attempts).
_FIRST_DEGREE = ((40.0, 40), (8.0, 56), (2.0, 80), (0.5, 112), (0.0, 160))
# Row layout of BetaPosterior.table's source: cumulative integrals of g (panels 0, 1) and of x g
# (panels 0, 1), densities (panels 0, 1), the normaliser; each panel takes CDF, partial mean, density, 1.
_TABLE_ROWS = np.array([0, 2, 4, 6, 1, 3, 5, 6])


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
def _hermite() -> tuple[FloatArray, FloatArray]:
    """Gauss-Hermite nodes and weights for the weight exp(-z^2 / 2) (probabilists')."""
    nodes, weights = hermite_e.hermegauss(_HERMITE_NODES)
    return nodes, weights


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
    for _ in range(4):
        e = math.exp(-s)
        step = (drop(s) - _DROP) / (k - total * c * e / (1.0 + c * (e - 1.0)))
        s -= step
        if step < 1e-3 * s:  # within 0.1 % of the root (from above): tight enough for a panel end
            break
    return s


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
        "_form",
        "_hermite",
        "_laplace_scale",
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
        self._outer: dict[int, Outer] = {}
        # The degree to try first: near-normal posteriors need 40, skewed ones (few successes) more.
        self._first_degree = next(d for least, d in _FIRST_DEGREE if min(a, b) >= least)
        self._hermite = min(a, b) >= _HERMITE_SHAPE
        self._laplace_scale = 1.0 / math.sqrt(curvature)
        self._form = (k, c, sign, total)
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

    def outer_rule(self, logit_scale: float = math.inf, log_scale: float = math.inf) -> Outer:
        """Nodes (logit values) and normalised weights g(y_i) w_i to integrate this density times a
        smooth factor (the other arm's CDF, which rises over `logit_scale` logit units or `log_scale`
        log(x) units; d log x / dy = 1 - x).

        Near-normal posteriors (min(a, b) >= _HERMITE_SHAPE): Gauss-Hermite, _HERMITE_NODES nodes
        y* + sigma z_i around the mode, sigma = (ab / (a + b))^-1/2 (Laplace's scale), weights
        w_i g(y_i) / phi(z_i): exact for the density times polynomials of degree 2 m - 1 if it were
        normal, and to ~1e-14 on Beta posteriors this close to normal (measured against Evan Miller's
        sum from min(a, b) = 30 up; the other factor is no sharper: it belongs to the wider arm).
        Otherwise Gauss-Legendre on both panels, m nodes each: at least n / 2 + _EXTRA_GAUSS for the
        density itself, and enough that the nodes are at most _OUTER_SPACING times the width of the
        other factor's rise apart wherever it falls (a Beta(1, b) has a 36-unit left panel).
        """
        if self._hermite:
            if 0 not in self._outer:
                z, hermite_weights = _hermite()
                d = z * self._laplace_scale
                k, c, sign, total = self._form
                weights = hermite_weights * np.exp(
                    k * sign * d - total * np.log1p(c * np.expm1(sign * d)) + 0.5 * z * z
                )
                self._outer[0] = Outer.of(self.mode + d, weights / weights.sum())
            return self._outer[0]
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
            self._outer[m] = Outer.of(y.reshape(-1)[keep], weights[keep] / weights[keep].sum())
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


class Outer(NamedTuple):
    """An outer quadrature rule: logit nodes, weights, and x = sigmoid(y), log x, weights * x, sum of those."""

    y: FloatArray
    weights: FloatArray
    x: FloatArray
    log_x: FloatArray
    weighted_x: FloatArray
    mean_x: float

    @classmethod
    def of(cls, y: FloatArray, weights: FloatArray) -> Outer:
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
