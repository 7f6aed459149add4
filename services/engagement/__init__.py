"""Engagement service: next-best-action tasks for relationship managers."""
