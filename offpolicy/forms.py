"""The estimate form of the variant page's "Predicted online CTR" card."""

from __future__ import annotations

from typing import Any, cast

from django import forms


class EstimateForm(forms.Form):
    """Queue an off-policy estimate of a variant's CTR from an experiment's logged impressions."""

    experiment = forms.ChoiceField(choices=(), label="Log of experiment")
    seed = forms.IntegerField(min_value=0, initial=0, label="Bootstrap seed")

    def __init__(self, *args: Any, sources: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["experiment"]).choices = sources
