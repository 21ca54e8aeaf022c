"""SRM, multiple testing, power and CUPED against scipy/statsmodels and known values."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from engine.stats import (
    CovariateSample,
    DegenerateDataError,
    InvalidDataError,
    InvalidParameterError,
    SampleMean,
    adjust_pvalues,
    cuped_adjust,
    mean_test,
    power_proportions,
    sample_size_proportions,
    srm_test,
)


class TestSrm:
    def test_reference(self) -> None:
        r = srm_test([10_000, 10_300], [0.5, 0.5])
        assert round(r.p_value, 5) == 0.03524
        ref = stats.chisquare([10_000, 10_300])
        assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)
        assert r.chi2 == pytest.approx(ref.statistic, rel=1e-12)
        assert not r.mismatch  # 0.035 > 0.001 alarm threshold
        assert json.loads(json.dumps(dataclasses.asdict(r)))["dof"] == 1

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.integers(0, 10**9), min_size=2, max_size=6), st.data())
    def test_matches_scipy(self, counts: list[int], data: st.DataObject) -> None:
        if sum(counts) == 0:
            counts[0] = 1
        weights = data.draw(st.lists(st.floats(0.01, 10), min_size=len(counts), max_size=len(counts)))
        r = srm_test(counts, weights)
        w = np.array(weights) / sum(weights)
        ref = stats.chisquare(counts, f_exp=w * sum(counts))
        assert r.p_value == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-300)
        assert 0.0 <= r.p_value <= 1.0

    @pytest.mark.parametrize(
        ("counts", "weights", "error"),
        [
            ([10], [1], InvalidDataError),
            ([10, 10], [1], InvalidDataError),
            ([10, 10], [1, 0], InvalidDataError),
            ([0, 0], [1, 1], DegenerateDataError),
            ([-1, 5], [1, 1], InvalidDataError),
        ],
    )
    def test_errors(self, counts, weights, error) -> None:
        with pytest.raises(error):
            srm_test(counts, weights)


class TestMultipleTesting:
    @pytest.mark.parametrize(("ours", "theirs"), [("holm", "holm"), ("bh", "fdr_bh"), ("bonferroni", "bonferroni")])
    @settings(max_examples=40, deadline=None)
    @given(p=st.lists(st.floats(0, 1), min_size=1, max_size=30))
    def test_matches_statsmodels(self, ours: str, theirs: str, p: list[float]) -> None:
        from statsmodels.stats.multitest import multipletests

        r = adjust_pvalues(p, method=ours)  # type: ignore[arg-type]
        reject, corrected, _, _ = multipletests(p, alpha=0.05, method=theirs)
        np.testing.assert_allclose(r.adjusted, corrected, rtol=1e-12, atol=1e-15)
        assert r.rejected == [bool(x) for x in reject]

    def test_errors(self) -> None:
        with pytest.raises(InvalidParameterError, match="unknown method"):
            adjust_pvalues([0.1], method="sidak")  # type: ignore[arg-type]
        with pytest.raises(InvalidDataError):
            adjust_pvalues([])
        with pytest.raises(InvalidDataError):
            adjust_pvalues([1.2])


class TestPower:
    def test_reference_sample_size(self) -> None:
        from statsmodels.stats.power import NormalIndPower
        from statsmodels.stats.proportion import proportion_effectsize

        r = sample_size_proportions(0.10, 0.10, alpha=0.05, power=0.8)
        assert r.n_per_arm == 14_745
        ref = NormalIndPower().solve_power(proportion_effectsize(0.11, 0.10), alpha=0.05, power=0.8)
        assert r.n_per_arm_exact == pytest.approx(ref, rel=1e-6)

    @pytest.mark.parametrize(("baseline", "mde", "n"), [(0.1, 0.1, 15_000), (0.02, -0.05, 200_000), (0.5, 0.01, 10)])
    def test_power_matches_statsmodels_and_inverts(self, baseline: float, mde: float, n: int) -> None:
        from statsmodels.stats.power import NormalIndPower
        from statsmodels.stats.proportion import proportion_effectsize

        r = power_proportions(baseline, mde, n)
        h = proportion_effectsize(baseline * (1 + mde), baseline)
        assert r.power == pytest.approx(NormalIndPower().power(abs(h), nobs1=n, alpha=0.05), rel=1e-9)
        if 0.05 < r.power < 0.999:
            back = sample_size_proportions(baseline, mde, power=r.power)
            assert back.n_per_arm_exact == pytest.approx(n, rel=1e-6)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"baseline": 0.0, "mde_relative": 0.1},
            {"baseline": 0.6, "mde_relative": 1.0},
            {"baseline": 0.1, "mde_relative": 0.0},
            {"baseline": 0.1, "mde_relative": 0.1, "power": 1.0},
            {"baseline": 0.1, "mde_relative": 0.1, "alpha": 0.0},
        ],
    )
    def test_errors(self, kwargs) -> None:
        with pytest.raises(InvalidParameterError):
            sample_size_proportions(**kwargs)


class TestCuped:
    def _data(self, seed: int = 5, n: int = 5_000, lift: float = 0.3):
        rng = np.random.default_rng(seed)
        xc, xt = rng.gamma(2.0, 5.0, n), rng.gamma(2.0, 5.0, n)
        yc = 0.8 * xc + rng.normal(0, 3, n)
        yt = 0.8 * xt + rng.normal(0, 3, n) + lift
        return yc, xc, yt, xt

    def test_matches_per_unit_adjustment(self) -> None:
        yc, xc, yt, xt = self._data()
        r = cuped_adjust(CovariateSample.from_values(yc, xc), CovariateSample.from_values(yt, xt))
        # theta from a within-arm pooled regression of y on x (arm fixed effects).
        xd = np.concatenate([xc - xc.mean(), xt - xt.mean()])
        yd = np.concatenate([yc - yc.mean(), yt - yt.mean()])
        theta = float(xd @ yd / (xd @ xd))
        assert r.theta == pytest.approx(theta, rel=1e-9)
        x_all = np.concatenate([xc, xt]).mean()
        adj_c, adj_t = yc - theta * (xc - x_all), yt - theta * (xt - x_all)
        assert r.control_adjusted.mean == pytest.approx(adj_c.mean(), rel=1e-9)
        assert r.treatment_variance_adjusted == pytest.approx(adj_t.var(ddof=1), rel=1e-6)
        fed = mean_test(r.control_adjusted, r.treatment_adjusted)
        direct = mean_test(SampleMean.from_values(adj_c), SampleMean.from_values(adj_t))
        assert fed.p_value == pytest.approx(direct.p_value, rel=1e-6)
        raw = mean_test(SampleMean.from_values(yc), SampleMean.from_values(yt))
        assert fed.std_error < raw.std_error
        assert r.variance_reduction == pytest.approx(1 - (fed.std_error / raw.std_error) ** 2, rel=1e-6)
        assert r.variance_reduction == pytest.approx(r.correlation**2, abs=0.02)
        assert json.loads(json.dumps(dataclasses.asdict(r)))["theta"] == r.theta

    def test_useless_covariate_gives_no_reduction(self) -> None:
        rng = np.random.default_rng(9)
        y1, y2 = rng.normal(size=4_000), rng.normal(size=4_000)
        r = cuped_adjust(
            CovariateSample.from_values(y1, rng.normal(size=4_000)),
            CovariateSample.from_values(y2, rng.normal(size=4_000)),
        )
        assert abs(r.variance_reduction) < 0.01
        assert r.variance_reduction >= 0.0  # least squares never increases the pooled residual variance much

    def test_constant_covariate_raises(self) -> None:
        y = np.arange(10.0)
        with pytest.raises(DegenerateDataError, match="constant"):
            cuped_adjust(CovariateSample.from_values(y, np.ones(10)), CovariateSample.from_values(y, np.ones(10)))

    def test_small_n_raises(self) -> None:
        with pytest.raises(DegenerateDataError):
            cuped_adjust(CovariateSample(1, 1.0, 1.0, 1.0, 1.0, 1.0), CovariateSample(1, 1.0, 1.0, 1.0, 1.0, 1.0))

    def test_perfect_covariate_results_in_finite_output(self) -> None:
        x = np.arange(20.0)
        r = cuped_adjust(CovariateSample.from_values(2 * x, x), CovariateSample.from_values(2 * x + 1, x))
        assert r.variance_reduction == pytest.approx(1.0)
        assert all(math.isfinite(v) for v in (r.theta, r.correlation))
        with pytest.raises(DegenerateDataError, match="zero variance"):
            mean_test(r.control_adjusted, r.treatment_adjusted)
