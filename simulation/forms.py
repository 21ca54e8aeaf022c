"""The simulation form of the experiment page (the service checks the rules)."""

from __future__ import annotations

from django import forms

from engine.simulation.config import ARRIVALS, MAX_POPULATION_SCALE


class SimulationForm(forms.Form):
    users = forms.IntegerField(min_value=1, max_value=1_000_000, initial=2000, label="Sessions per day")
    days = forms.IntegerField(min_value=1, max_value=365, initial=14)
    seed = forms.IntegerField(min_value=0, initial=1)
    effect = forms.FloatField(required=False, min_value=-0.9, max_value=10,
                              help_text="optional injected relative lift for the treatments, e.g. 0.1")  # fmt: skip
    arrivals = forms.ChoiceField(
        choices=[(mode, mode) for mode in ARRIVALS], initial=ARRIVALS[0], required=False,
        help_text="at-start: every shopper may come from day 0; uniform / first-purchase: first visits spread over "
        "the run (uniformly / by the shoppers' real first purchases), so new shoppers keep arriving (bandits)",
    )  # fmt: skip
    population_scale = forms.IntegerField(
        min_value=1, max_value=MAX_POPULATION_SCALE, initial=1, required=False, label="Shop size (× shoppers)",
        help_text="each real shopper stands for this many with the same tastes: a larger shop, for effects the data "
        "set's shoppers are too few to show (scale the sessions per day with it)",
    )  # fmt: skip
