from __future__ import annotations

from typing import Any

import pytest

from engine.simulation import ConfigError, SimulationConfig


def test_defaults_are_valid_and_lift_is_one() -> None:
    config = SimulationConfig()

    assert config.lift == 1.0
    assert (config.k, config.eta, config.future_attractiveness) == (10, 1.0, 0.6)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"daily_users": 0}, "daily_users"),
        ({"daily_users": float("inf")}, "daily_users"),
        ({"days": 0}, "days"),
        ({"days": 2.5}, "days"),
        ({"seed": -1}, "seed"),
        ({"k": 0}, "k"),
        ({"k": True}, "k"),
        ({"search_share": 1.5}, "search_share"),
        ({"query_words": 0}, "query_words"),
        ({"eta": -0.1}, "eta"),
        ({"future_attractiveness": 1.2}, "future_attractiveness"),
        ({"background_attractiveness": -0.1}, "background_attractiveness"),
        ({"affinity_attractiveness": 0.7}, "affinity_attractiveness"),
        ({"affinity_attractiveness": 0.001}, "affinity_attractiveness"),
        ({"cart_min": 0.6, "cart_max": 0.5}, "cart_min"),
        ({"purchase_min": 0.9}, "purchase_min"),
        ({"price_sensitivity": -1.0}, "price_sensitivity"),
        ({"injected_effect": -1.5}, "injected_effect"),
        ({"injected_effect": 0.7}, "injected_effect"),
        ({"injected_arm": -1}, "injected_arm"),
        ({"start": -5}, "start"),
        ({"eta": "1"}, "eta"),
        ({"arrivals": "later"}, "arrivals"),
        ({"arrivals": 1}, "arrivals"),
    ],
)
def test_bad_values_raise_config_error_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as error:
        SimulationConfig(**overrides)

    assert error.value.field == field
    assert str(error.value).startswith(f"{field}: ")


def test_injected_effect_up_to_the_clipping_bound_is_allowed() -> None:
    config = SimulationConfig(future_attractiveness=0.5, injected_effect=1.0)

    assert config.lift == 2.0
