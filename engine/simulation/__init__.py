"""Django-free core of the traffic simulator: real users, their real future, simulated clicks.

Public API:

* `SimulationConfig` (all parameters, validated; `ConfigError` / `SimulationError`);
* `Shoppers.build(data, cutoff=...)`: eligible users, future items, held-out neighbourhood affinities,
  `attractiveness(users, items, config)` (module `preferences`);
* `plan_sessions(config, shoppers) -> Sessions`: Poisson arrivals and search queries;
* `outcomes(config, shoppers, sessions, recommended, arms, rng) -> Outcomes`: clicks, carts,
  purchases and revenue per impression (module `clicks`);
* `run(config, shoppers, recommend_batch, assign, ...) -> SimulationResult`: the whole
  simulation, day by day, with progress, cancellation and a per-day callback (module `engine`);
  with `exploration=Exploration(...)` it serves an experiment's exploration share as live serving
  does (`explore`, module `exploring`).
"""

from .clicks import Outcomes, examination, outcomes
from .config import ConfigError, SimulationConfig, SimulationError
from .engine import ArmSummary, Assign, DayBatch, InterleaveBatch, Progress, RecommendBatch, SimulationResult, run
from .exploring import Exploration, ExploredDay, explore
from .preferences import DEFAULT_SHRINK, Shoppers, default_cutoff, future_neighbours
from .sessions import Sessions, plan_sessions

__all__ = [
    "DEFAULT_SHRINK",
    "ArmSummary",
    "Assign",
    "ConfigError",
    "DayBatch",
    "Exploration",
    "ExploredDay",
    "InterleaveBatch",
    "Outcomes",
    "Progress",
    "RecommendBatch",
    "Sessions",
    "Shoppers",
    "SimulationConfig",
    "SimulationError",
    "SimulationResult",
    "default_cutoff",
    "examination",
    "explore",
    "future_neighbours",
    "outcomes",
    "plan_sessions",
    "run",
]
