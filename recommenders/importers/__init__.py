"""Parsers that turn data files into a `ParsedDataset` (Django-free; the loader writes it)."""
