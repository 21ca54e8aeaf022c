"""The simulator's parameters and errors (Django-free).

Every number the simulation uses lives in `SimulationConfig`, validated on creation, so a run
is fully described by (config, shoppers, recommenders, assignment): the same values give the
same events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

__all__ = ["ARRIVALS", "MAX_POPULATION_SCALE", "ConfigError", "SimulationConfig", "SimulationError"]

SECONDS_PER_DAY = 86_400
ARRIVALS = ("at-start", "uniform", "first-purchase")
"""When shoppers first visit: all from day 0 (the default), or spread over the run (see `sessions`)."""
MAX_POPULATION_SCALE = 20
"""Largest `population_scale`: 20 x Online Retail's 1,893 shoppers is about 38,000."""


class SimulationError(ValueError):
    """Base of the errors the simulator raises on bad input."""


class ConfigError(SimulationError):
    """A `SimulationConfig` (or preference-model) parameter is out of range; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class SimulationConfig:
    """Traffic, click and conversion parameters of one simulation.

    Traffic: `days` simulated days of `daily_users` sessions a day on average, starting at `start`
    (epoch seconds; None = the shoppers' cut-off, so the simulated traffic happens in the users'
    "future"). `arrivals` says when the shoppers first come (module `sessions` has the formulas):
    "at-start" (the default): every eligible shopper may visit from day 0, each day has
    N_d ~ Poisson(`daily_users`) sessions at uniform times, each by a shopper drawn uniformly, so
    most shoppers have made their first visit within the first days; "uniform": each shopper's
    first visit is at a uniform time of the run; "first-purchase": at the time of their real first
    purchase after the cut-off, rescaled onto the run. In both spread modes an arrived shopper
    returns as a Poisson process whose rate makes the expected total daily_users × days, so new
    shoppers keep arriving until the end, as on a shop that gains customers, and daily traffic grows.
    With probability `search_share` a session carries a text query made of 1 .. `query_words`
    words of the title of one of the user's future items. Each session is shown a list of `k` items.

    Clicks (position-based model): the item at rank r (1-based) is clicked with probability

        P(click) = (1 / r) ** eta  ×  min(1, a(u, i) × (1 + injected_effect · [arm = injected_arm]))

    where a(u, i) is the preference model's attractiveness (see `preferences.Shoppers`),
    built from `future_attractiveness` (item bought by the user after the cut-off),
    `affinity_attractiveness` (the most attractive an item outside that set can be, reached at
    held-out neighbourhood affinity 1) and `background_attractiveness` (affinity 0).

    Conversion after a click, with relevance ρ = (a - background) / (future - background) in
    [0, 1] (1 for a future item, 0 for a background item) and price factor
    φ = min(1, (reference price / price) ** price_sensitivity) (1 when the price is unknown):

        P(cart | click)        = φ × (cart_min + (cart_max - cart_min) × ρ)
        P(purchase | cart)     = purchase_min + (purchase_max - purchase_min) × ρ
        revenue of a purchase  = the item's price (0 when unknown), quantity 1

    Defaults (eta = 1, so a 10-item list's mean examination is 0.29) give, on Online Retail
    with a 20 % future (2,000 sessions a day for 5 days), a CTR of 1.5 % for a popularity
    list, 18.2 % for lists of the users' true future items, 0.6 % for random items, and only
    1.8 % for lists of each user's closest held-out neighbours that they did not buy: the
    preference model alone cannot make a list look good, finding the real purchases does.
    The trained variants of the bench reach 2.0-2.8 % (CHANGELOG.md, 2026-11-28). With A = 0.12 a
    near miss (a typical affinity 0.1-0.4) is 3-10 times less attractive than the item
    itself, so held-out purchases bring about half of a good variant's clicks.

    Population: `population_scale` s (a whole number, 1-20, default 1) simulates a shop s times as
    large: each eligible shopper stands for s shoppers with the same tastes and their own identity,
    assignment, arrivals and clicks (`Shoppers.replicated`). The data set's shoppers cap what an
    experiment can learn (their differences dominate the variance, whatever the sessions per
    shopper), so s > 1 is how to see an effect a small data set is too small to show; scale
    `daily_users` with it to keep the sessions per shopper. Run in-process only: over HTTP the
    server could not know a replica's tastes.

    `injected_effect` is the known treatment effect for checking the statistics: a relative
    lift of the click probability of arm `injected_arm` (0 = A/A or no effect). It must keep
    future_attractiveness × (1 + injected_effect) ≤ 1, so that the lift is exact and not clipped.
    """

    daily_users: float = 1_000.0
    days: int = 14
    seed: int = 0
    k: int = 10
    search_share: float = 0.2
    query_words: int = 3
    eta: float = 1.0
    future_attractiveness: float = 0.6
    affinity_attractiveness: float = 0.12
    background_attractiveness: float = 0.005
    cart_min: float = 0.1
    cart_max: float = 0.5
    purchase_min: float = 0.3
    purchase_max: float = 0.7
    price_sensitivity: float = 0.0
    injected_effect: float = 0.0
    injected_arm: int = 1
    start: int | None = None
    arrivals: str = "at-start"
    population_scale: int = 1

    def __post_init__(self) -> None:
        if self.arrivals not in ARRIVALS:
            raise ConfigError("arrivals", f"must be one of {', '.join(ARRIVALS)}, got {self.arrivals!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if (f.name == "start" and value is None) or f.name == "arrivals":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f.name, f"expected a number, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f.name, f"must be finite, got {value!r}")
        for name in ("days", "seed", "k", "query_words", "injected_arm", "start", "population_scale"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, int):
                raise ConfigError(name, f"expected a whole number, got {value!r}")
        if self.daily_users <= 0:
            raise ConfigError("daily_users", f"must be > 0 (mean sessions per day), got {self.daily_users}")
        if self.days < 1:
            raise ConfigError("days", f"must be at least 1, got {self.days}")
        if self.seed < 0:
            raise ConfigError("seed", f"must be >= 0, got {self.seed}")
        if self.k < 1:
            raise ConfigError("k", f"must be at least 1, got {self.k}")
        if self.query_words < 1:
            raise ConfigError("query_words", f"must be at least 1, got {self.query_words}")
        if self.eta < 0:
            raise ConfigError("eta", f"must be >= 0 (0 = every rank examined), got {self.eta}")
        if self.injected_arm < 0:
            raise ConfigError("injected_arm", f"must be an arm index >= 0, got {self.injected_arm}")
        for name in (
            "search_share",
            "future_attractiveness",
            "affinity_attractiveness",
            "background_attractiveness",
            "cart_min",
            "cart_max",
            "purchase_min",
            "purchase_max",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(name, f"must be a probability in [0, 1], got {value}")
        if not self.background_attractiveness <= self.affinity_attractiveness <= self.future_attractiveness:
            raise ConfigError(
                "affinity_attractiveness",
                "attractiveness must satisfy background <= affinity <= future, got "
                f"{self.background_attractiveness} / {self.affinity_attractiveness} / {self.future_attractiveness}",
            )
        if self.future_attractiveness <= self.background_attractiveness:
            raise ConfigError("future_attractiveness", "must be greater than background_attractiveness")
        if self.cart_min > self.cart_max:
            raise ConfigError("cart_min", f"must not exceed cart_max ({self.cart_max}), got {self.cart_min}")
        if self.purchase_min > self.purchase_max:
            raise ConfigError(
                "purchase_min", f"must not exceed purchase_max ({self.purchase_max}), got {self.purchase_min}"
            )
        if self.price_sensitivity < 0:
            raise ConfigError("price_sensitivity", f"must be >= 0 (0 = price ignored), got {self.price_sensitivity}")
        if self.injected_effect < -1:
            raise ConfigError("injected_effect", f"a relative lift must be >= -1, got {self.injected_effect}")
        if self.future_attractiveness * (1 + self.injected_effect) > 1:
            raise ConfigError(
                "injected_effect",
                f"future_attractiveness × (1 + injected_effect) = "
                f"{self.future_attractiveness * (1 + self.injected_effect):.3f} exceeds 1, so the lift would be "
                "clipped; lower one of them",
            )
        if not 1 <= self.population_scale <= MAX_POPULATION_SCALE:
            raise ConfigError(
                "population_scale",
                f"must be a whole number from 1 to {MAX_POPULATION_SCALE} (shoppers per real shopper), "
                f"got {self.population_scale}",
            )
        if self.start is not None and self.start < 0:
            raise ConfigError("start", f"must be epoch seconds >= 0, got {self.start}")

    @property
    def lift(self) -> float:
        """Multiplier of the injected arm's attractiveness: 1 + injected_effect."""
        return 1.0 + self.injected_effect
