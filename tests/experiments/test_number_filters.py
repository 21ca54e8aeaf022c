"""The template filters that print statistics: a level is printed as set, a p-value rounded."""

from __future__ import annotations

from experiments.templatetags.numbers import level, pvalue


def test_a_small_significance_level_is_printed_as_set_not_as_a_tiny_p_value() -> None:
    # The bandit's per-period SRM level is alpha / periods: 0.001 / 40 = 2.5e-05.
    assert level(0.001 / 40) == "2.5e-05"
    assert pvalue(0.001 / 40) == "< 0.0001"
    assert level(0.05) == "0.05"
    assert level(None) == "–"
