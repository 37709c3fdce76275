"""Shared fixtures: the OpenAI-compatible stub, a real server, and real Socket.IO clients."""

from __future__ import annotations

import pytest

from flow.testing.client import Recorder
from flow.testing.openai_stub import OpenAIStub


@pytest.fixture
async def stub():
    async with OpenAIStub() as s:
        yield s


@pytest.fixture
async def clients():
    """`await clients(url)` → a connected Recorder; all are closed after the test."""
    made: list[Recorder] = []

    async def connect(url: str, auth: dict | None = None) -> Recorder:
        rec = await Recorder().connect(url, auth)
        made.append(rec)
        return rec

    yield connect
    for rec in made:
        await rec.close()
