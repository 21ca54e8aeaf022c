"""Forms of the experiment pages. They only parse input; the services validate the rules and
their errors (field -> reason) are put back on the form's fields, so the page shows them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from django import forms

from engine.offpolicy.exploration import MAX_EXPLORATION_PERCENT
from experiments.models import Decision, Experiment
from experiments.services.lifecycle import ArmSpec, ExperimentSpec
from recommenders.models import Variant

MAX_ARMS = 5
METRIC_CHOICES = Experiment.Metric.choices


def trained_variant_choices() -> list[tuple[str, str]]:
    variants = (
        Variant.objects.filter(status=Variant.Status.TRAINED).select_related("dataset").order_by("name", "-version")
    )
    return [("", "—")] + [(v.label, f"{v.label} · {v.algorithm} · {v.dataset.name}") for v in variants]


class ExperimentForm(forms.Form):
    key = forms.SlugField(max_length=100, help_text="a short unique id used in API calls, e.g. home-recs-ease")
    name = forms.CharField(max_length=200)
    hypothesis = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False,
                                 help_text="what you expect to happen and why")  # fmt: skip
    design = forms.ChoiceField(
        choices=Experiment.Design.choices, initial=Experiment.Design.AB, required=False,
        help_text="interleaving blends exactly two arms' rankings into one list per request (control = team A); "
        "a bandit moves new users' traffic toward the arm most likely to be best",
    )  # fmt: skip
    surface = forms.ChoiceField(choices=Experiment.Surface.choices)
    traffic_percent = forms.FloatField(initial=100, min_value=0, max_value=100,
                                       help_text="share of eligible users who enter the experiment")  # fmt: skip
    exploration_percent = forms.FloatField(
        initial=0, required=False, min_value=0, max_value=MAX_EXPLORATION_PERCENT, label="Exploration share (%)",
        help_text="share of exposed requests shown a random ordering of the arm's top items, so the logs support "
        f"off-policy estimates of other variants (0 to {MAX_EXPLORATION_PERCENT:g}; costs some CTR)",
        error_messages={
            # Django %-formats these with the limit, so the percent sign is doubled.
            key: f"must lie in [0, {MAX_EXPLORATION_PERCENT:g}] %%: every explored request shows a random ordering, "
            "which costs CTR"
            for key in ("min_value", "max_value")
        },
    )  # fmt: skip
    layer = forms.SlugField(max_length=100, required=False,
                            help_text="experiments in one layer never share a user (optional)")  # fmt: skip
    layer_share_percent = forms.FloatField(initial=100, min_value=0, max_value=100,
                                           help_text="share of the layer this experiment reserves")  # fmt: skip
    primary_metric = forms.ChoiceField(choices=METRIC_CHOICES, initial=Experiment.Metric.CTR)
    secondary_metrics = forms.MultipleChoiceField(choices=METRIC_CHOICES, required=False,
                                                  widget=forms.CheckboxSelectMultiple)  # fmt: skip
    guardrail_metrics = forms.MultipleChoiceField(choices=METRIC_CHOICES, required=False,
                                                  widget=forms.CheckboxSelectMultiple)  # fmt: skip
    baseline_rate = forms.FloatField(required=False, min_value=0, max_value=1,
                                     help_text="the primary metric's current rate, e.g. 0.015 for 1.5 %")  # fmt: skip
    minimum_detectable_effect = forms.FloatField(
        required=False, min_value=0, help_text="smallest relative lift worth detecting, e.g. 0.1 for +10 %"
    )
    expected_daily_users = forms.IntegerField(required=False, min_value=1, max_value=1_000_000_000)
    alpha = forms.FloatField(initial=0.05, min_value=0, max_value=0.5, help_text="significance level")
    analysis_method = forms.ChoiceField(
        choices=Experiment.AnalysisMethod.choices, initial=Experiment.AnalysisMethod.SEQUENTIAL, required=False,
        widget=forms.RadioSelect, label="Analysis method",
        help_text="sequential: the verdict is valid whenever you look, including after an early stop; fixed "
        "horizon: slightly more power, but the verdict waits for the plan's sample size",
    )  # fmt: skip
    guardrail_tolerance = forms.FloatField(
        initial=0.0, required=False, min_value=0, max_value=1, label="Guardrail tolerance",
        help_text="relative drop a guardrail metric may show before it counts as breached, e.g. 0.02 for -2 %",
    )  # fmt: skip
    auto_pause = forms.BooleanField(
        required=False,
        label="Pause automatically",
        help_text="pause the experiment when a sample-ratio mismatch or a breached guardrail raises an alert",
    )
    power = forms.FloatField(initial=0.8, min_value=0, max_value=1)
    # Optional: left empty, the bandit settings take ExperimentSpec's defaults.
    bandit_min_share = forms.FloatField(
        initial=0.05, required=False, label="Bandit: minimum share per arm",
        help_text="every arm keeps at least this share of new users, e.g. 0.05",
    )  # fmt: skip
    bandit_burn_in_trials = forms.IntegerField(
        initial=1_000, required=False, min_value=0, max_value=1_000_000_000, label="Bandit: burn-in trials",
        help_text="equal weights until every arm has this many trials",
    )  # fmt: skip
    bandit_burn_in_periods = forms.IntegerField(
        initial=1,
        required=False,
        min_value=0,
        max_value=10_000,
        label="Bandit: burn-in periods",
        help_text="equal weights for this many updates",
    )
    bandit_update_minutes = forms.IntegerField(
        initial=1_440, required=False, min_value=1, max_value=525_600, label="Bandit: update interval (minutes)",
        help_text="how often the weights are recomputed",
    )  # fmt: skip

    def spec(self, arms: list[ArmSpec]) -> ExperimentSpec:
        data = dict(self.cleaned_data)
        data["layer"] = data["layer"] or ""
        # Empty optional fields take the spec's defaults (an empty design is A/B).
        data = {name: value for name, value in data.items() if value not in (None, "")}
        return ExperimentSpec(arms=arms, **data)

    def add_service_errors(self, errors: Mapping[str, str]) -> None:
        """Put the service's field errors on the fields (arm errors go to the arm forms' caller)."""
        for field, reason in errors.items():
            self.add_error(field if field in self.fields else None, reason)


class ArmForm(forms.Form):
    name = forms.SlugField(max_length=100, required=False)
    variant = forms.ChoiceField(choices=(), required=False)
    weight = forms.FloatField(initial=1, min_value=0, required=False)

    def __init__(self, *args: Any, variant_choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["variant"]).choices = variant_choices

    @property
    def filled(self) -> bool:
        return bool(self.cleaned_data.get("name") or self.cleaned_data.get("variant"))


class RampForm(forms.Form):
    traffic_percent = forms.FloatField(min_value=0, max_value=100, label="New traffic share (%)")


class EarlyReadForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000,
                             help_text="why the verdict is read before the plan's sample size")  # fmt: skip


class DecisionForm(forms.Form):
    outcome = forms.ChoiceField(choices=Decision.Outcome.choices, widget=forms.RadioSelect)
    winning_arm = forms.ChoiceField(choices=(), required=False)
    rationale = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), help_text="why: the evidence the decision rests on"
    )

    def __init__(self, *args: Any, arms: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["winning_arm"]).choices = [("", "—")] + [(name, name) for name in arms]


class PlanForm(forms.Form):
    """The power calculator's inputs (also read from the wizard's fields)."""

    baseline_rate = forms.FloatField(min_value=0, max_value=1)
    minimum_detectable_effect = forms.FloatField(min_value=0)
    expected_daily_users = forms.IntegerField(required=False, min_value=1, max_value=1_000_000_000)
    traffic_percent = forms.FloatField(required=False, min_value=0, max_value=100)
    arms = forms.IntegerField(required=False, min_value=2, max_value=MAX_ARMS)
    design = forms.ChoiceField(choices=Experiment.Design.choices, required=False)
    alpha = forms.FloatField(required=False, min_value=0, max_value=0.5)
    power = forms.FloatField(required=False, min_value=0, max_value=1)
