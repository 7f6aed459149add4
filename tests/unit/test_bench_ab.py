"""bench.ab's report: each side's figures flattened and shown as the range over its runs."""

from __future__ import annotations

from bench.ab import ranges, summary

REPLAYS = [
    {
        "profile_events_per_s": 2330.4,
        "chain_events_per_s": 2296.0,
        "cpu_ms_per_event": {"profile": 0.171, "postgres": 0.149},
        "cpu_ms_per_event_total": 0.320,
    },
    {
        "profile_events_per_s": 2267.0,
        "chain_events_per_s": 2246.0,
        "cpu_ms_per_event": {"profile": 0.174, "postgres": 0.147},
        "cpu_ms_per_event_total": 0.321,
    },
]


def test_a_side_is_reported_as_each_figures_range_over_its_runs() -> None:
    assert ranges(REPLAYS) == (
        "profile_events_per_s 2,267-2,330; chain_events_per_s 2,246-2,296; "
        "cpu_ms_per_event profile 0.171-0.174; cpu_ms_per_event postgres 0.147-0.149; "
        "cpu_ms_per_event_total 0.320-0.321"
    )


def test_counts_are_shown_whole() -> None:
    runs = [{"task": {"n": 60, "p50": 241.0}}, {"task": {"n": 58, "p50": 302.5}}]

    assert ranges(runs) == "task n 58-60; task p50 241-302"


def test_one_run_is_one_line_for_either_mode() -> None:
    assert summary(REPLAYS[0]) == (
        "profile 2,330/s, chain 2,296/s; CPU ms an event profile 0.171 postgres 0.149 total 0.320"
    )
    latency = {
        "cores": {"profile": 0.47, "postgres": 0.33},
        "tier": {"n": 60, "p50": 182.2, "p90": 229.0, "p99": 338.0},
        "task": {"n": 60, "p50": 241.0, "p90": 367.0, "p99": 519.0},
    }
    assert summary(latency) == (
        "tier n=60 p50 182 p90 229 p99 338 ms; task n=60 p50 241 p90 367 p99 519 ms; "
        "cores 0.80 (profile 0.47 postgres 0.33)"
    )
