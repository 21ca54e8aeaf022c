"""Django-free statistics engine for experiments (numpy + scipy only).

Public API: sufficient statistics (``Proportion``, ``SampleMean``, ``RatioSample``,
``CovariateSample``); fixed-horizon (``proportion_test``, ``mean_test``, ``ratio_test``), Bayesian
(``bayesian_test``: exact Beta-Binomial for proportions, normal on the relative lift for ratios and
means; ``bayesian_proportion_test``) and always-valid sequential (``sequential_test``) comparisons; SRM
check (``srm_test``); CUPED (``cuped_adjust``); multiple testing (``adjust_pvalues``); power
(``sample_size_proportions``, ``power_proportions``); vectorised ``*_arrays`` variants for
simulation. Results are frozen dataclasses of plain floats/bools/str (``dataclasses.asdict`` is
JSON-serialisable). Every impossible input raises a ``StatisticError`` subclass.
"""

from .bayesian import BayesianConfig, BayesianResult, bayesian_proportion_test, bayesian_test, beta_prob_greater
from .cuped import CupedResult, cuped_adjust
from .errors import DegenerateDataError, InvalidDataError, InvalidParameterError, StatisticError
from .frequentist import (
    ArrayTestResult,
    FrequentistConfig,
    TestResult,
    compare_arrays,
    mean_test,
    proportion_test,
    proportion_test_arrays,
    ratio_test,
)
from .multiple_testing import AdjustedPValues, MultipleTestingConfig, adjust_pvalues
from .power import PowerResult, SampleSizeResult, power_proportions, sample_size_proportions
from .sequential import (
    DEFAULT_N_STAR,
    ArraySequentialResult,
    SequentialConfig,
    SequentialResult,
    sequential_monitor,
    sequential_proportion_test_arrays,
    sequential_test,
)
from .srm import SrmConfig, SrmResult, srm_test
from .statistics import CovariateSample, Proportion, RatioSample, SampleMean

__all__ = [
    "DEFAULT_N_STAR",
    "AdjustedPValues",
    "ArraySequentialResult",
    "ArrayTestResult",
    "BayesianConfig",
    "BayesianResult",
    "CovariateSample",
    "CupedResult",
    "DegenerateDataError",
    "FrequentistConfig",
    "InvalidDataError",
    "InvalidParameterError",
    "MultipleTestingConfig",
    "PowerResult",
    "Proportion",
    "RatioSample",
    "SampleMean",
    "SampleSizeResult",
    "SequentialConfig",
    "SequentialResult",
    "SrmConfig",
    "SrmResult",
    "StatisticError",
    "TestResult",
    "adjust_pvalues",
    "bayesian_proportion_test",
    "bayesian_test",
    "beta_prob_greater",
    "compare_arrays",
    "cuped_adjust",
    "mean_test",
    "power_proportions",
    "proportion_test",
    "proportion_test_arrays",
    "ratio_test",
    "sample_size_proportions",
    "sequential_monitor",
    "sequential_proportion_test_arrays",
    "sequential_test",
    "srm_test",
]
