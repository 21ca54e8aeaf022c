"""Catalogue and interaction data: a Dataset, its Items and its Interactions."""

from __future__ import annotations

from django.db import models


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
