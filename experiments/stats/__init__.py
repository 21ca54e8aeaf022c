"""Django-free statistics engine for experiments (numpy + scipy only).

Public API: sufficient statistics (``Proportion``, ``SampleMean``, ``RatioSample``,
``CovariateSample``), tests returning JSON-serialisable result dataclasses, vectorised array
variants for simulation, and one ``StatisticError`` family for impossible inputs.
"""

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
from .statistics import CovariateSample, Proportion, RatioSample, SampleMean

__all__ = [
    "ArrayTestResult",
    "CovariateSample",
    "DegenerateDataError",
    "FrequentistConfig",
    "InvalidDataError",
    "InvalidParameterError",
    "Proportion",
    "RatioSample",
    "SampleMean",
    "StatisticError",
    "TestResult",
    "compare_arrays",
    "mean_test",
    "proportion_test",
    "proportion_test_arrays",
    "ratio_test",
]
