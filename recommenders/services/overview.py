"""Read-side queries for the variant pages: latest evaluations, headline metrics, hybrid candidates."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import F, OuterRef, Subquery

from recommenders.models import Dataset, Evaluation, Variant

HEADLINE_K = 10
# The accuracy metrics shown side by side (all in [0, 1]); the rest go in the tables.
ACCURACY_METRICS = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate")


@dataclass(frozen=True)
class Headline:
    """NDCG and precision at `k` (10 when the evaluation measured it, else the evaluation's own k)."""

    ndcg: float | None
    precision: float | None
    k: int


def latest_evaluations(variant_ids: Iterable[int]) -> dict[int, Evaluation]:
    """The newest succeeded evaluation of each variant that has one (two queries whatever the count)."""
    newest = (
        Evaluation.objects.filter(variant=OuterRef("pk"), status=Evaluation.Status.SUCCEEDED)
        .order_by(F("finished_at").desc(nulls_last=True), "-pk")
        .values("pk")[:1]
    )
    evaluation_ids = (
        Variant.objects.filter(pk__in=list(variant_ids))
        .annotate(latest=Subquery(newest))
        .exclude(latest=None)
        .values_list("latest", flat=True)
    )
    return {e.variant_id: e for e in Evaluation.objects.filter(pk__in=list(evaluation_ids))}


def headline(evaluation: Evaluation | None, k: int = HEADLINE_K) -> Headline | None:
    """NDCG@k and P@k of an evaluation: from its metric@k curves when stored, else at its own k."""
    if evaluation is None:
        return None
    metrics: dict[str, Any] = evaluation.metrics or {}
    curves = metrics.get("at_k") or {}
    if len(curves.get("ndcg", ())) >= k and len(curves.get("precision", ())) >= k:
        return Headline(curves["ndcg"][k - 1], curves["precision"][k - 1], k)
    return Headline(metrics.get("ndcg"), metrics.get("precision"), evaluation.k)


def hybrid_candidates(dataset: Dataset) -> list[tuple[Variant, Headline | None]]:
    """Trained, non-hybrid variant versions on `dataset` (a hybrid's possible components), with metrics."""
    variants = list(
        Variant.objects.filter(dataset=dataset, status=Variant.Status.TRAINED)
        .exclude(algorithm="hybrid")
        .order_by("name", "-version")
    )
    evaluations = latest_evaluations(v.pk for v in variants)
    return [(v, headline(evaluations.get(v.pk))) for v in variants]
