"""Scoring service: each customer's value tier, kept current as money moves."""
