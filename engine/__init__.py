"""The Django-free cores: arrays and dataclasses in, dataclasses out.

Statistics (`engine.stats`), verdicts (`engine.verdicts`), bucketing, planning, bandits,
interleaving, off-policy estimators and the simulation core. Nothing here imports Django, Celery or
an app of the platform (import-linter contracts in `.importlinter` keep it so); the apps call in.
"""
