"""Shared plumbing for every service: settings, database, consumer loop, outbox, health.

It holds no business rules; services build on it and never copy it.
"""
