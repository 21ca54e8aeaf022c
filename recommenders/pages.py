"""The data scientists' pages: variants, their training and offline metrics (thin views over services)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from recommenders.models import Dataset, Variant


@login_required
@permission_required("recommenders.view_variant", raise_exception=True)
def variant_list(request: HttpRequest) -> HttpResponse:
    """Variants, newest first, filtered by algorithm, data set, status and a name search."""
    variants = Variant.objects.select_related("dataset", "author").order_by("name", "-version")
    filters = {key: request.GET.get(key, "").strip() for key in ("algorithm", "dataset", "status", "q")}
    if filters["algorithm"]:
        variants = variants.filter(algorithm=filters["algorithm"])
    if filters["dataset"]:
        variants = variants.filter(dataset__name=filters["dataset"])
    if filters["status"]:
        variants = variants.filter(status=filters["status"])
    if filters["q"]:
        variants = variants.filter(name__icontains=filters["q"])
    context = {
        "section": "variants",
        "variants": variants,
        "filters": filters,
        "filtered": any(filters.values()),
        "algorithms": Variant.objects.order_by("algorithm").values_list("algorithm", flat=True).distinct(),
        "datasets": Dataset.objects.order_by("name").values_list("name", flat=True),
        "statuses": Variant.Status.choices,
    }
    return render(request, "recommenders/variant_list.html", context)
