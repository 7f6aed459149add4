"""`c360`: the platform's command line.

c360 up [--demo]         start everything (embedded PostgreSQL and broker unless configured)
c360 migrate             run every service's migrations against DATABASE_URL
c360 topics              create every topic of the contract and its .dlq
c360 token --role ROLE   print a bearer token for local use
c360 demo                stream the small synthetic bank into a running platform
c360 rescore             recompute every tier and score from stored profiles (after a policy change)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta

from runtime.logging import configure_logging
from runtime.settings import RuntimeSettings

log = logging.getLogger("c360")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="c360", description="Customer 360 platform for retail banks.")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start the whole platform")
    up.add_argument("--demo", action="store_true", help="also stream a small synthetic bank in")
    up.add_argument("--customers", type=int, default=3000, help="size of the demo bank")

    commands.add_parser("migrate", help="run all migrations against DATABASE_URL")
    commands.add_parser("topics", help="create all topics on KAFKA_BOOTSTRAP_SERVERS")

    token = commands.add_parser("token", help="print a bearer token for local use")
    token.add_argument("--role", required=True, choices=["rm", "supervisor", "analyst", "admin", "service"])
    token.add_argument("--rm-id", dest="rm_id")
    token.add_argument("--branch-id", dest="branch_id")
    token.add_argument("--subject", default=None, help="the token's `sub` (default: local-<role>)")

    demo = commands.add_parser("demo", help="stream the small synthetic bank to KAFKA_BOOTSTRAP_SERVERS")
    demo.add_argument("--customers", type=int, default=3000)
    demo.add_argument("--seed", type=int, default=7)

    rescore = commands.add_parser("rescore", help="recompute every tier and score under the configured policy")
    rescore.add_argument("--policy", default=None, help="tier policy YAML (default: C360_SCORING__POLICY_FILE)")
    rescore.add_argument("--score-model", dest="score_model", default=None, help="score model YAML")

    dlq = commands.add_parser("dlq", help="list or replay a topic's dead letters")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_commands.add_parser("list", help="what TOPIC.dlq holds")
    dlq_list.add_argument("topic", help="the topic the messages were refused on, such as bank.accounts.v1")
    dlq_replay = dlq_commands.add_parser("replay", help="produce dead letters again to their topic")
    dlq_replay.add_argument("topic")
    which = dlq_replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", dest="ids", action="append", help="an event id to replay (repeatable)")
    which.add_argument("--all", action="store_true", help="replay every message the .dlq holds")

    commands.add_parser("lag", help="consumer-group lag of every service, per partition")

    simulate = commands.add_parser("simulate", help="generate the synthetic bank: ground truth and events")
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument("--scale", type=float, default=1.0, help="share of the branch of DOMAIN.md (1 = 458,067)")
    simulate.add_argument("--truth", default=None, help="directory for the ground truth (default: .c360/simulated)")
    simulate.add_argument("--produce", action="store_true", help="also produce the events to KAFKA_BOOTSTRAP_SERVERS")

    args = parser.parse_args(argv)
    settings = RuntimeSettings()
    configure_logging("c360", level="WARNING", fmt="text")

    if args.command == "token":
        return _token(args)
    if args.command == "migrate":
        from c360.platform import migrate_all

        migrate_all(_require(settings.database_url, "DATABASE_URL"))
        print("migrations are at head")
        return 0
    if args.command == "topics":
        from c360.platform import create_topics

        created = create_topics(
            settings.kafka_bootstrap_servers, settings.topic_partitions, settings.topic_replication_factor
        )
        print(f"created {len(created)} topics")
        return 0
    if args.command == "demo":
        from c360.demo import stream_demo_bank

        count = asyncio.run(stream_demo_bank(settings.kafka_bootstrap_servers, args.customers, args.seed))
        print(f"produced {count} events")
        return 0
    if args.command == "rescore":
        return _rescore(args)
    if args.command == "dlq":
        return _dlq(args, settings.kafka_bootstrap_servers)
    if args.command == "lag":
        return _lag(settings.kafka_bootstrap_servers)
    if args.command == "simulate":
        return _simulate(args, settings)
    return _up(settings, demo=args.demo, customers=args.customers)


def _dlq(args: argparse.Namespace, bootstrap: str) -> int:
    from c360.ops import read_dead_letters, replay_dead_letters

    letters = asyncio.run(read_dead_letters(_require(bootstrap, "KAFKA_BOOTSTRAP_SERVERS"), args.topic))
    if args.dlq_command == "list":
        for letter in letters:
            print(
                f"{letter.partition}:{letter.offset}\t{letter.event_type or '-'}\t{letter.event_id or '-'}\t"
                f"{letter.reason}"
            )
        print(f"{len(letters)} messages in {args.topic}.dlq")
        return 0
    chosen = letters if args.all else [letter for letter in letters if letter.event_id in set(args.ids)]
    missing = set(args.ids or ()) - {letter.event_id for letter in chosen}
    if missing:
        print(f"not in {args.topic}.dlq: {', '.join(sorted(missing))}", file=sys.stderr)
    count = asyncio.run(replay_dead_letters(bootstrap, chosen))
    print(f"replayed {count} messages to {args.topic}")
    return 1 if missing else 0


def _simulate(args: argparse.Namespace, settings: RuntimeSettings) -> int:
    from pathlib import Path

    from c360.ops import produce_all
    from c360.simulate import SyntheticBank

    bank = SyntheticBank(seed=args.seed, scale=args.scale)
    truth = bank.truth()
    directory = Path(args.truth) if args.truth else settings.data_dir / "simulated"
    truth.write(directory)
    print(f"{len(truth.customers):,} customers; ground truth in {directory}")
    for band in truth.bands():
        print(f"  band from {band['floor_cny']:>7,} CNY: {band['customers']:>7,} customers, {band['aum_cny']} CNY")
    if args.produce:
        bootstrap = _require(settings.kafka_bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")
        count = asyncio.run(produce_all(bootstrap, bank.events(), client_id="c360-simulate", progress=sys.stderr))
        print(f"produced {count:,} events")
    return 0


def _lag(bootstrap: str) -> int:
    from c360.ops import consumer_groups, consumer_lag

    rows = asyncio.run(consumer_lag(_require(bootstrap, "KAFKA_BOOTSTRAP_SERVERS"), consumer_groups()))
    print("group\ttopic\tpartition\tcommitted\tend\tlag")
    for row in rows:
        print(f"{row.group}\t{row.topic}\t{row.partition}\t{row.committed}\t{row.end}\t{row.lag}")
    return 0


def _rescore(args: argparse.Namespace) -> int:
    from pathlib import Path

    from services.scoring.app import create_assessor
    from services.scoring.rescore import rescore
    from services.scoring.settings import ScoringSettings

    settings = ScoringSettings()
    if args.policy:
        settings.scoring.policy_file = Path(args.policy)
    if args.score_model:
        settings.scoring.score_model_file = Path(args.score_model)
    database_url = _require(settings.database_url, "DATABASE_URL")
    progress = asyncio.run(rescore(database_url, create_assessor(settings), settings.scoring.batch))
    if progress.customers == 0:
        print("nothing re-scored: no customers yet, or another re-score holds the lock")
        return 0
    print(f"re-scored {progress.customers} customers; {progress.published} events queued for publishing")
    return 0


def _require(value: str, name: str) -> str:
    if not value:
        raise SystemExit(f"{name} is not set")
    return value


def _token(args: argparse.Namespace) -> int:
    from services.gateway.auth import Role, issue_token
    from services.gateway.settings import GatewaySettings

    if args.role == "rm" and not args.rm_id:
        raise SystemExit("--rm-id is required for the rm role")
    if args.role == "supervisor" and not args.branch_id:
        raise SystemExit("--branch-id is required for the supervisor role")
    settings = GatewaySettings()
    print(
        issue_token(
            settings.resolved_jwt_secret(),
            subject=args.subject or f"local-{args.role}",
            role=Role(args.role),
            now=datetime.now(UTC),
            ttl=timedelta(minutes=settings.gateway.token_ttl_minutes),
            rm_id=args.rm_id,
            branch_id=args.branch_id,
        )
    )
    return 0


def configured_bootstrap(settings: RuntimeSettings) -> str | None:
    """The broker the environment names (under either accepted name), or None for the embedded one."""
    return settings.kafka_bootstrap_servers if "kafka_bootstrap_servers" in settings.model_fields_set else None


def _up(settings: RuntimeSettings, *, demo: bool, customers: int) -> int:
    from c360.embedded import EmbeddedBroker, EmbeddedPostgres
    from c360.platform import ServiceProcesses, create_topics, default_ports, migrate_all, service_env

    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    postgres: EmbeddedPostgres | None = None
    broker: EmbeddedBroker | None = None
    services: ServiceProcesses | None = None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM stop the platform at any point, start-up included; they are handled
    # explicitly because a shell may start a background job with SIGINT ignored.
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    try:
        database_url = settings.database_url
        if not database_url:
            postgres = EmbeddedPostgres(data_dir / "pgdata")
            database_url = postgres.start()
            print(f"postgres    embedded, data in {postgres.pgdata}")
        else:
            print("postgres    from DATABASE_URL")
        bootstrap = configured_bootstrap(settings)
        if bootstrap is not None:
            print(f"kafka       {bootstrap}")
        else:
            broker = EmbeddedBroker(settings.broker_port, data_dir / "tansu.log")
            bootstrap = broker.start()
            print(f"kafka       embedded Tansu (memory storage) on {bootstrap}")
        migrate_all(database_url)
        created = create_topics(bootstrap, settings.topic_partitions, settings.topic_replication_factor)
        print(f"topics      {len(created)} created, {settings.topic_partitions} partitions each")
        ports = default_ports()
        env = service_env(dict(os.environ), database_url=database_url, bootstrap_servers=bootstrap, ports=ports)
        env.setdefault("C360_DATA_DIR", str(data_dir))
        services = ServiceProcesses(env, ports, log_dir=data_dir / "logs")
        services.start()
        services.wait_healthy(timeout_s=90)
        for name, port in ports.items():
            print(f"{name:<11} http://127.0.0.1:{port}   (docs at /docs, logs in {data_dir / 'logs' / name}.log)")
        print(
            'ready       try: curl -H "Authorization: Bearer $(c360 token --role admin)" '
            f"http://127.0.0.1:{ports['gateway']}/v1/customers/by-ref/core-deposits/SIM-7-0000001"
        )
        if demo:
            from c360.demo import seed_demo_audiences, seed_demo_roster, stream_demo_bank

            managers = seed_demo_roster(f"http://127.0.0.1:{ports['engagement']}")
            print(f"demo        roster of {managers} RMs (try: c360 token --role rm --rm-id RM-BR01-W1)")
            segments = seed_demo_audiences(f"http://127.0.0.1:{ports['engagement']}")
            print(f"demo        {segments} segments and a campaign (GET /v1/segments, /v1/campaigns)")
            count = asyncio.run(stream_demo_bank(bootstrap, customers, seed=7))
            print(f"demo        streamed {count} events for {customers} customers")
        print("press Ctrl-C to stop")
        while not (exited := services.exited()):
            time.sleep(0.5)
        for name, code in exited.items():
            print(f"{name} exited with code {code}; stopping", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping")
        if services is not None:
            services.stop()
        if broker is not None:
            broker.stop()
        if postgres is not None:
            postgres.stop()
        print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
