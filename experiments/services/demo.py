"""The demo's experiment: best sellers against EASE on the bundled data, with simulated traffic."""

from __future__ import annotations

from django.contrib.auth.models import User

from experiments.models import Experiment
from experiments.services.lifecycle import ArmSpec, ExperimentSpec, create_experiment, transition
from experiments.services.simulation import queue_simulation, run_simulation
from recommenders.models import Variant

KEY = "demo-home-recommendations"
ARMS = (
    ("best-sellers", "retail-popularity", True),
    ("ease", "retail-ease", False),
    ("item-knn", "retail-item-knn", False),
)


def run_demo_experiment(owner_username: str = "pm") -> str:
    """Create and start the demo experiment (once) and simulate two weeks of traffic through it.

    Needs the demo variants trained (make demo queues this after their training, on the same
    single-worker queue). Returns a one-line summary.
    """
    experiment = Experiment.objects.filter(key=KEY).first()
    if experiment is None:
        missing = [name for _, name, _ in ARMS if not Variant.objects.filter(name=name, status="trained").exists()]
        if missing:
            return f"demo experiment not created: {', '.join(missing)} not trained"
        owner = User.objects.get(username=owner_username)
        spec = ExperimentSpec(
            key=KEY,
            name="Home page recommendations: best sellers vs EASE vs item-kNN",
            hypothesis="Personalised lists (EASE, item-kNN) get more clicks and purchases than best sellers.",
            arms=[ArmSpec(arm, variant, 1.0, control) for arm, variant, control in ARMS],
            primary_metric="ctr",
            secondary_metrics=["conversion_rate", "revenue_per_user"],
            baseline_rate=0.02,
            minimum_detectable_effect=0.1,
            expected_daily_users=2000,
        )
        experiment = transition(create_experiment(spec, owner), "start", owner)
    if experiment.simulations.filter(status="succeeded").exists():
        return f"{KEY} has simulated traffic already"
    simulation = queue_simulation(experiment, {"daily_users": 2000, "days": 14, "seed": 1}, send=False)
    run_simulation(simulation.pk)
    simulation.refresh_from_db()
    return f"{KEY}: {simulation.sessions:,} simulated sessions, {simulation.clicks:,} clicks ({simulation.message})"
