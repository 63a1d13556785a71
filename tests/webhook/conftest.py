"""Fixtures for the web app: a test client over a real database, and dossiers to look up."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from storage.db import session_scope
from storage.dossiers import submit_dossier
from webhook.app import create_app
from webhook.runtime import Runtime
from webhook.settings import Settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app, base_url="https://testserver") as test_client:
        yield test_client
    app.state.runtime.engine.dispose()


def submitted_code(
    runtime: Runtime, slug: str, *, at: datetime = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
) -> str:
    """Submit a dossier (no citizen attached) at the first receiving agency; its code."""
    procedure = runtime.catalog.procedure_by_slug(slug)
    with session_scope(runtime.engine) as session:
        dossier, _ = submit_dossier(
            session,
            catalog=runtime.catalog,
            calendar=runtime.calendar,
            procedure_code=procedure.code,
            agency_code=runtime.catalog.receiving_agencies(procedure)[0].code,
            citizen_id=None,
            channel="web",
            at=at,
        )
    return dossier.code
