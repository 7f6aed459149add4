"""A property-based fuzz run of the public API from its own OpenAPI document (schemathesis): no
request, valid or not, makes the gateway answer 5xx."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from runtime.settings import development_secret
from services.gateway.auth import Role, issue_token
from tests.e2e.conftest import Platform

pytestmark = pytest.mark.e2e


def test_no_generated_request_makes_the_gateway_fail(platform: Platform) -> None:
    document = httpx.get(platform.gateway + "/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    token = issue_token(
        development_secret(platform.data_dir),
        subject="fuzz",
        role=Role.ADMIN,
        now=datetime.now(UTC),
        ttl=timedelta(minutes=30),
    )
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    for operation in operations:
        for mode, examples in ((GenerationMode.POSITIVE, 12), (GenerationMode.NEGATIVE, 8)):

            @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                response = case.call(base_url=platform.gateway, headers=headers, timeout=10)
                if response.status_code >= 500:
                    failures.append(
                        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
                    )

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing about this operation can be made invalid
    assert failures == [], "\n".join(failures)
