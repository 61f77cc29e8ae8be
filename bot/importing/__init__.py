"""Scores from files: CSV read through a mapping, JSONL as evaluation v1, backfilled in bulk."""
