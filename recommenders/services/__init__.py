"""Use cases of the recommenders app, as plain functions (one module per area)."""
