"""Catalogue and interaction data: a Dataset, its Items and its Interactions."""

from __future__ import annotations

from typing import Any

from django.db import models

from core.models import BackgroundJob


class Dataset(models.Model):
    """One imported data set: a catalogue of items and the interactions of its users."""

    class Format(models.TextChoices):
        ONLINE_RETAIL = "online-retail", "UCI Online Retail"
        MOVIELENS = "movielens", "MovieLens"
        CSV = "csv", "Generic CSV"

    name = models.SlugField(max_length=100, unique=True)
    source_format = models.CharField(max_length=20, choices=Format.choices)
    source_path = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    item_count = models.PositiveIntegerField(default=0)
    user_count = models.PositiveIntegerField(default=0)
    interaction_count = models.PositiveIntegerField(default=0)
    first_timestamp = models.DateTimeField(null=True, blank=True)
    last_timestamp = models.DateTimeField(null=True, blank=True)
    # Interactions at or after this time are held out: training never sees them, and the
    # traffic simulator takes them as what the shoppers really wanted next.
    holdout_from = models.DateTimeField(null=True, blank=True)
    import_report = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["name"]
        permissions = [("import_dataset", "Can import data sets")]

    def __str__(self) -> str:
        return self.name


class Item(models.Model):
    """A product (or film) of a data set's catalogue; `external_id` is the shop's id, kept as text."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    external_id = models.CharField(max_length=100)
    title = models.CharField(max_length=500, blank=True)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=200, blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "external_id"], name="item_unique_external_id")]

    def __str__(self) -> str:
        return f"{self.external_id} {self.title}".strip()


class Interaction(models.Model):
    """One thing a user did with an item. `value` is the rating, quantity or 1."""

    class EventType(models.TextChoices):
        VIEW = "view", "View"
        CLICK = "click", "Click"
        ADD_TO_CART = "add_to_cart", "Add to cart"
        PURCHASE = "purchase", "Purchase"
        RATING = "rating", "Rating"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="interactions")
    user_id = models.CharField(max_length=100)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="interactions")
    event_type = models.CharField(max_length=20, choices=EventType.choices)
    value = models.FloatField(default=1.0)
    timestamp = models.DateTimeField()
    # The shop's grouping of events (an invoice, a session); blank when the source has none.
    session_id = models.CharField(max_length=100, blank=True)

    class Meta:
        indexes = [
            # Training and per-user splits read a data set's interactions user by user.
            models.Index(fields=["dataset", "user_id", "timestamp"], name="interaction_user_time"),
            # Temporal splits and "latest N days" windows cut on time.
            models.Index(fields=["dataset", "timestamp"], name="interaction_time"),
            # Item popularity and "who bought this" read by item.
            models.Index(fields=["item", "event_type"], name="interaction_item_event"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.event_type} {self.item_id}"


class UserAttribute(models.Model):
    """One attribute of one user of a data set (e.g. `country`), read when experiment results are broken
    down by segment (analysis.services.segments). Importers that know such a fact store it; the
    others leave the table empty for their data sets."""

    COUNTRY = "country"

    # The unique index below leads with the data set and serves its lookups: no second index.
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="user_attributes", db_index=False)
    user_id = models.CharField(max_length=100)
    name = models.CharField(max_length=50)
    value = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "user_id", "name"], name="user_attribute_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.name}={self.value}"


class ImmutableVariant(Exception):
    """A trained variant version's algorithm, parameters or data set was about to change."""


class VariantQuerySet(models.QuerySet["Variant"]):
    def latest_versions(self) -> VariantQuerySet:
        """The newest version of each variant name."""
        newest = models.Subquery(
            Variant.objects.filter(name=models.OuterRef("name")).order_by("-version").values("version")[:1]
        )
        return self.filter(version=newest)


class Variant(models.Model):
    """A registered recommender: an algorithm with parameters on a data set, in numbered versions.

    Registering a name again makes a new version; a version that trained successfully is
    immutable (its algorithm, parameters and data set can no longer change).
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        TRAINING = "training", "Training"
        TRAINED = "trained", "Trained"
        FAILED = "failed", "Failed"

    name = models.SlugField(max_length=100)
    version = models.PositiveIntegerField()
    algorithm = models.CharField(max_length=100)
    params = models.JSONField(default=dict, blank=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="variants")
    description = models.TextField(blank=True)
    author = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="variants")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = VariantQuerySet.as_manager()

    class Meta:
        ordering = ["name", "-version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="variant_unique_version")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            frozen = (
                Variant.objects.filter(pk=self.pk, status=Variant.Status.TRAINED)
                .values_list("algorithm", "params", "dataset_id")
                .first()
            )
            if frozen is not None and frozen != (self.algorithm, self.params, self.dataset_id):
                raise ImmutableVariant(f"{self} is trained: register a new version instead of changing it.")
        super().save(*args, **kwargs)

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    def latest_successful_run(self) -> TrainingRun | None:
        return self.training_runs.filter(status=TrainingRun.Status.SUCCEEDED).order_by("-finished_at").first()


class TrainingRun(BackgroundJob):
    """One training of a variant version on its data set, run by a Celery worker."""

    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="training_runs")
    log = models.TextField(blank=True)
    artifact_path = models.CharField(max_length=500, blank=True)
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    fit_report = models.JSONField(default=dict, blank=True)
    peak_memory_mb = models.FloatField(null=True, blank=True)

    class Meta(BackgroundJob.Meta):
        constraints = [
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="training_progress_at_most_100")
        ]

    def __str__(self) -> str:
        return f"training of {self.variant} ({self.status})"


class Evaluation(BackgroundJob):
    """An offline evaluation of a variant version: fit on a split's train part, measured on its test part."""

    class Split(models.TextChoices):
        STRATIFIED = "stratified", "Per-user random (stratified)"
        TEMPORAL = "temporal", "Global temporal cut-off"
        LEAVE_LAST_OUT = "leave_last_out", "Leave last out"

    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="evaluations")
    split = models.CharField(max_length=20, choices=Split.choices, default=Split.STRATIFIED)
    ratio = models.FloatField(default=0.75)
    seed = models.IntegerField(default=42)
    k = models.PositiveSmallIntegerField(default=10)
    metrics = models.JSONField(default=dict, blank=True)
    train_seconds = models.FloatField(null=True, blank=True)
    evaluate_seconds = models.FloatField(null=True, blank=True)

    class Meta(BackgroundJob.Meta):
        pass

    def __str__(self) -> str:
        return f"evaluation of {self.variant} ({self.status})"
