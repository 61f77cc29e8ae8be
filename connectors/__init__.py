"""Clients of the QA platforms coachloop pulls scores from (HTTP lives here, not in the core)."""
