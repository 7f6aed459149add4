"""Kafka clients: producers without broker-side idempotence, and topic creation.

The local Tansu broker has neither the idempotent producer nor transactions, so nothing here
asks for them: delivery is at-least-once and every consumer is idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts import ALL_TOPICS, dlq_topic

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]


def make_producer(bootstrap_servers: str, *, client_id: str) -> AIOKafkaProducer:
    """A producer that waits for all in-sync replicas and batches a little (linger 5 ms)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=15_000,
    )


def platform_topics() -> list[str]:
    """Every topic of the contract and its dead-letter topic."""
    topics: list[str] = []
    for topic in ALL_TOPICS:
        topics += [topic, dlq_topic(topic)]
    return topics


async def ensure_topics(
    bootstrap_servers: str, topics: Iterable[str], *, partitions: int, replication_factor: int = 1
) -> list[str]:
    """Create the topics that do not exist yet; returns the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="c360-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            await admin.create_topics(
                [NewTopic(name=t, num_partitions=partitions, replication_factor=replication_factor) for t in missing]
            )
            log.info("topics.created", extra={"topics": missing, "partitions": partitions})
        return missing
    finally:
        await admin.close()


def header(headers: Iterable[tuple[str, bytes]] | None, name: str) -> str | None:
    """The value of one Kafka header as text, or None."""
    for key, value in headers or ():
        if key == name and value is not None:
            return value.decode("utf-8", "replace")
    return None
