"""Fixed-horizon tests: reference values, scipy/statsmodels agreement, properties and edge cases."""

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
    DegenerateDataError,
    InvalidDataError,
    InvalidParameterError,
    Proportion,
    RatioSample,
    SampleMean,
    StatisticError,
    compare_arrays,
    mean_test,
    proportion_test,
    proportion_test_arrays,
    ratio_test,
)

REL = 1e-6
C = Proportion(n=10_000, successes=1_000)
T = Proportion(n=10_000, successes=1_100)


def _gbstats_reference(pc: float, nc: int, pt: float, nt: int, relative: bool, alpha: float = 0.05):
    """GrowthBook gbstats 0.8.0 TwoSidedTTest, re-derived here from its published formulas with scipy."""
    vc, vt = pc * (1 - pc), pt * (1 - pt)
    if relative:
        d = pt / pc - 1
        var = vt / (pc**2 * nt) + vc * pt**2 / (pc**4 * nc)
    else:
        d = pt - pc
        var = vt / nt + vc / nc
    dof = (vt / nt + vc / nc) ** 2 / ((vt / nt) ** 2 / (nt - 1) + (vc / nc) ** 2 / (nc - 1))
    se = math.sqrt(var)
    p = 2 * stats.t.sf(abs(d / se), dof)
    w = stats.t.ppf(1 - alpha / 2, dof) * se
    return d, d - w, d + w, p


class TestReferenceValues:
    def test_absolute_matches_issue_reference(self) -> None:
        r = proportion_test(C, T, alpha=0.05, difference="absolute")
        assert r.effect == pytest.approx(0.0100, rel=1e-9)
        assert round(r.ci_low, 5) == 0.00150
        assert round(r.ci_high, 5) == 0.01850
        assert round(r.p_value, 5) == 0.02107
        assert r.significant

    def test_relative_matches_issue_reference(self) -> None:
        r = proportion_test(C, T, difference="relative")
        assert r.effect == pytest.approx(0.100, rel=1e-9)
        assert round(r.ci_low, 5) == 0.01086
        assert round(r.ci_high, 5) == 0.18914
        assert round(r.p_value, 5) == 0.02789

    @pytest.mark.parametrize("relative", [False, True])
    def test_matches_gbstats_formula_to_1e6(self, relative: bool) -> None:
        r = proportion_test(C, T, difference="relative" if relative else "absolute")
        d, lo, hi, p = _gbstats_reference(0.1, 10_000, 0.11, 10_000, relative)
        assert r.effect == pytest.approx(d, rel=REL)
        assert r.ci_low == pytest.approx(lo, rel=REL)
        assert r.ci_high == pytest.approx(hi, rel=REL)
        assert r.p_value == pytest.approx(p, rel=REL)

    @pytest.mark.parametrize(("nc", "sc", "nt", "st_"), [(10_000, 1_000, 10_000, 1_100), (523, 17, 871, 45)])
    def test_normal_matches_statsmodels_wald(self, nc: int, sc: int, nt: int, st_: int) -> None:
        from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

        r = proportion_test(Proportion(nc, sc), Proportion(nt, st_), distribution="normal")
        ref = test_proportions_2indep(st_, nt, sc, nc, method="wald", compare="diff")
        lo, hi = confint_proportions_2indep(st_, nt, sc, nc, method="wald", compare="diff")
        assert r.p_value == pytest.approx(ref.pvalue, rel=REL)
        assert r.ci_low == pytest.approx(lo, rel=REL)
        assert r.ci_high == pytest.approx(hi, rel=REL)

    def test_mean_test_matches_scipy_welch(self) -> None:
        rng = np.random.default_rng(1)
        a = rng.exponential(3.0, 400)
        b = rng.exponential(3.4, 350)
        r = mean_test(SampleMean.from_values(a), SampleMean.from_values(b))
        ref = stats.ttest_ind(b, a, equal_var=False)
        assert r.p_value == pytest.approx(ref.pvalue, rel=REL)
        ci = ref.confidence_interval(0.95)
        assert r.ci_low == pytest.approx(ci.low, rel=REL)
        assert r.ci_high == pytest.approx(ci.high, rel=REL)
        assert r.dof == pytest.approx(ref.df, rel=REL)

    def test_ratio_test_with_unit_denominators_equals_mean_test(self) -> None:
        rng = np.random.default_rng(2)
        a, b = rng.normal(1, 1, 300), rng.normal(1.2, 1.5, 280)
        r_ratio = ratio_test(RatioSample.from_values(a, np.ones_like(a)), RatioSample.from_values(b, np.ones_like(b)))
        r_mean = mean_test(SampleMean.from_values(a), SampleMean.from_values(b))
        assert r_ratio.p_value == pytest.approx(r_mean.p_value, rel=1e-9)
        assert r_ratio.ci_low == pytest.approx(r_mean.ci_low, rel=1e-9)

    def test_ratio_delta_variance_matches_linearisation(self) -> None:
        # Var(R_hat) from the delta method equals Var(z)/n with z_i = (x_i - R y_i) / mean(y).
        rng = np.random.default_rng(3)
        y = rng.poisson(20, 500).astype(float) + 1
        x = rng.binomial(y.astype(int), 0.05).astype(float)
        s = RatioSample.from_values(x, y)
        z = (x - s.mean * y) / y.mean()
        assert s.variance == pytest.approx(z.var(ddof=1), rel=1e-9)

    def test_result_is_json_serialisable(self) -> None:
        payload = dataclasses.asdict(proportion_test(C, T))
        assert json.loads(json.dumps(payload)) == payload
        assert all(type(v) in (float, bool, str) for v in payload.values())


counts = st.integers(min_value=2, max_value=10**7)


@st.composite
def proportion_pairs(draw: st.DrawFn) -> tuple[Proportion, Proportion]:
    nc, nt = draw(counts), draw(counts)
    sc = draw(st.integers(0, nc))
    st_ = draw(st.integers(0, nt))
    # Exclude "no variance in either arm", which is a documented DegenerateDataError.
    if sc in (0, nc) and st_ in (0, nt):
        st_ = 1 if nt > 1 else st_
    return Proportion(nc, sc), Proportion(nt, st_)


class TestProperties:
    @settings(max_examples=150, deadline=None)
    @given(proportion_pairs(), st.sampled_from([0.01, 0.05, 0.2]))
    def test_pvalue_in_unit_interval_and_ci_contains_estimate(self, pair, alpha) -> None:
        c, t = pair
        try:
            r = proportion_test(c, t, alpha=alpha)
        except DegenerateDataError:
            return
        assert 0.0 <= r.p_value <= 1.0
        assert r.ci_low <= r.effect <= r.ci_high
        assert all(math.isfinite(v) for v in (r.effect, r.ci_low, r.ci_high, r.p_value, r.std_error))
        assert r.significant == (r.p_value < alpha)

    @settings(max_examples=100, deadline=None)
    @given(proportion_pairs())
    def test_swapping_arms_flips_sign(self, pair) -> None:
        c, t = pair
        try:
            r1, r2 = proportion_test(c, t), proportion_test(t, c)
        except DegenerateDataError:
            return
        assert r2.effect == pytest.approx(-r1.effect, abs=1e-15)
        assert r2.ci_low == pytest.approx(-r1.ci_high, rel=1e-9, abs=1e-15)
        assert r2.p_value == pytest.approx(r1.p_value, rel=1e-9, abs=1e-300)

    @settings(max_examples=60, deadline=None)
    @given(st.floats(1e-3, 1e6), st.integers(0, 2**31))
    def test_mean_test_scale_invariance(self, scale: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        a, b = rng.normal(5, 2, 50), rng.normal(5.5, 2, 60)
        base = mean_test(SampleMean.from_values(a), SampleMean.from_values(b))
        scaled = mean_test(SampleMean.from_values(a * scale), SampleMean.from_values(b * scale))
        assert scaled.p_value == pytest.approx(base.p_value, rel=1e-6)
        assert scaled.effect == pytest.approx(base.effect * scale, rel=1e-6)
        rel_base = mean_test(SampleMean.from_values(a), SampleMean.from_values(b), difference="relative")
        rel_scaled = mean_test(
            SampleMean.from_values(a * scale), SampleMean.from_values(b * scale), difference="relative"
        )
        assert rel_scaled.effect == pytest.approx(rel_base.effect, rel=1e-6)
        assert rel_scaled.ci_low == pytest.approx(rel_base.ci_low, rel=1e-6)

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.tuples(counts, counts), min_size=1, max_size=20), st.integers(0, 2**31))
    def test_vectorised_equals_scalar(self, sizes, seed) -> None:
        rng = np.random.default_rng(seed)
        nc = np.array([s[0] for s in sizes])
        nt = np.array([s[1] for s in sizes])
        sc = rng.binomial(nc, 0.3)
        stt = rng.binomial(nt, 0.35)
        try:
            arr = proportion_test_arrays(nc, sc, nt, stt, difference="relative")
        except DegenerateDataError:
            # Tiny arms can have zero variance; the scalar path must then raise too.
            raised = 0
            for i in range(len(sizes)):
                try:
                    proportion_test(
                        Proportion(int(nc[i]), int(sc[i])), Proportion(int(nt[i]), int(stt[i])), difference="relative"
                    )
                except DegenerateDataError:
                    raised += 1
            assert raised > 0
            return
        for i in range(len(sizes)):
            r = proportion_test(
                Proportion(int(nc[i]), int(sc[i])), Proportion(int(nt[i]), int(stt[i])), difference="relative"
            )
            assert arr.p_value[i] == pytest.approx(r.p_value, rel=1e-12, abs=1e-300)
            assert arr.ci_high[i] == pytest.approx(r.ci_high, rel=1e-12)


class TestEdgeCases:
    def test_zero_successes_in_one_arm_is_fine(self) -> None:
        r = proportion_test(Proportion(1000, 0), Proportion(1000, 5))
        assert 0.0 <= r.p_value <= 1.0
        assert math.isfinite(r.ci_low)

    def test_all_successes_in_one_arm_is_fine(self) -> None:
        r = proportion_test(Proportion(1000, 1000), Proportion(1000, 990))
        assert math.isfinite(r.p_value)

    @pytest.mark.parametrize(("a", "b"), [((100, 0), (100, 0)), ((100, 100), (50, 50)), ((100, 0), (100, 100))])
    def test_no_variance_in_both_arms_raises(self, a, b) -> None:
        with pytest.raises(DegenerateDataError, match="zero variance"):
            proportion_test(Proportion(*a), Proportion(*b))

    def test_zero_control_rate_relative_raises(self) -> None:
        with pytest.raises(DegenerateDataError, match="non-zero control mean"):
            proportion_test(Proportion(100, 0), Proportion(100, 3), difference="relative")

    def test_n_one_raises(self) -> None:
        with pytest.raises(DegenerateDataError, match="n >= 2"):
            proportion_test(Proportion(1, 1), Proportion(100, 3))
        with pytest.raises(DegenerateDataError):
            mean_test(SampleMean(1, 2.0, 4.0), SampleMean(10, 2.0, 4.0))

    @pytest.mark.parametrize(
        ("factory", "match"),
        [
            (lambda: Proportion(0, 0), "n must be >= 1"),
            (lambda: Proportion(-5, 0), "n must be >= 1"),
            (lambda: Proportion(10, 11), "cannot exceed"),
            (lambda: Proportion(10, -1), ">= 0"),
            (lambda: Proportion(10.0, 1), "integer"),
            (lambda: SampleMean(10, 10.0, 1.0), "variance would be negative"),
            (lambda: SampleMean(10, float("nan"), 1.0), "finite"),
            (lambda: RatioSample(10, 5.0, 10.0, 5.0, 10.0, 100.0), "Cauchy-Schwarz"),
        ],
    )
    def test_invalid_statistics_raise(self, factory, match) -> None:
        with pytest.raises(InvalidDataError, match=match):
            factory()

    @pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 2.0, float("nan")])
    def test_bad_alpha(self, alpha: float) -> None:
        with pytest.raises(InvalidParameterError, match="alpha"):
            proportion_test(C, T, alpha=alpha)

    def test_unknown_difference(self) -> None:
        with pytest.raises(InvalidParameterError, match="unknown difference"):
            proportion_test(C, T, difference="ratio")  # type: ignore[arg-type]

    def test_all_errors_share_one_family(self) -> None:
        assert issubclass(DegenerateDataError, StatisticError)
        assert issubclass(InvalidDataError, StatisticError)
        assert issubclass(InvalidParameterError, StatisticError)

    def test_mixed_statistic_types_raise(self) -> None:
        with pytest.raises(InvalidDataError):
            proportion_test(C, SampleMean(10, 1.0, 1.0))  # type: ignore[arg-type]

    def test_huge_n_no_overflow(self) -> None:
        n = 10**9
        for diff in ("absolute", "relative"):
            r = proportion_test(Proportion(n, n // 10), Proportion(n, n // 10 + 20_000), difference=diff)
            assert all(math.isfinite(v) for v in (r.effect, r.ci_low, r.ci_high, r.p_value))
            assert 0.0 <= r.p_value <= 1.0
        m = mean_test(SampleMean(n, 5.0 * n, 30.0 * n), SampleMean(n, 5.001 * n, 30.01 * n))
        assert math.isfinite(m.p_value)

    def test_ratio_zero_denominator_raises(self) -> None:
        s = RatioSample(3, 0.0, 0.0, 0.0, 0.0, 0.0)
        with pytest.raises(DegenerateDataError, match="sum_y is 0"):
            ratio_test(s, s)

    def test_arrays_reject_bad_input(self) -> None:
        with pytest.raises(InvalidDataError, match="successes_control"):
            proportion_test_arrays([10], [11], [10], [1])
        with pytest.raises(InvalidDataError, match="NaN"):
            compare_arrays([np.nan], [1.0], [10], [1.0], [1.0], [10])


class TestMoreInvariances:
    @settings(max_examples=40, deadline=None)
    @given(st.floats(1e-3, 1e3), st.floats(1e-3, 1e3), st.integers(0, 2**31))
    def test_ratio_scaling(self, scale_x: float, scale_y: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        yc, yt = rng.poisson(10, 200) + 1.0, rng.poisson(10, 220) + 1.0
        xc, xt = rng.binomial(yc.astype(int), 0.1) * 1.0, rng.binomial(yt.astype(int), 0.12) * 1.0
        try:
            base = ratio_test(RatioSample.from_values(xc, yc), RatioSample.from_values(xt, yt), difference="relative")
        except DegenerateDataError:
            return
        scaled = ratio_test(
            RatioSample.from_values(xc * scale_x, yc * scale_y),
            RatioSample.from_values(xt * scale_x, yt * scale_y),
            difference="relative",
        )
        # Relative lift and its test do not depend on the units of numerator or denominator.
        assert scaled.effect == pytest.approx(base.effect, rel=1e-6, abs=1e-12)
        assert scaled.p_value == pytest.approx(base.p_value, rel=1e-6)

    def test_extreme_magnitudes_stay_finite(self) -> None:
        big = SampleMean.from_moments(1000, 1e150, 1e298)
        big2 = SampleMean.from_moments(1000, 1.1e150, 1e298)
        r = mean_test(big, big2)
        assert math.isfinite(r.dof)
        assert 0.0 <= r.p_value <= 1.0


def test_the_log_ratio_test_is_the_delta_method_on_the_log_of_each_mean() -> None:
    control, treatment = Proportion(4_000, 200), Proportion(4_000, 260)
    result = proportion_test(control, treatment, difference="log", distribution="normal")
    d = math.log(0.065 / 0.05)
    variance = 0.065 * 0.935 / (0.065**2 * 4_000) + 0.05 * 0.95 / (0.05**2 * 4_000)
    half = stats.norm.ppf(0.975) * math.sqrt(variance)
    assert result.effect == pytest.approx(d, rel=1e-12)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(d / math.sqrt(variance)), rel=1e-9)
    assert (result.ci_low, result.ci_high) == pytest.approx((d - half, d + half), rel=1e-9)
    with pytest.raises(DegenerateDataError, match="a log ratio needs a positive mean in both arms"):
        proportion_test(Proportion(100, 0), Proportion(100, 3), difference="log")
