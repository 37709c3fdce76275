"""The conversation stores (memory, SQLite) and the per-session `Conversation` that saves to them."""

from __future__ import annotations

import asyncio

import pytest

from flow.conversations.backends import open_store
from flow.conversations.conversation import Conversation
from flow.conversations.memory import MemoryStore
from flow.conversations.sqlite import SqliteStore
from flow.conversations.store import Exchange, decode, encode, new_conversation_id, valid_id
from flow.testing.cluster import redis_server

HISTORY = [Exchange("hello", "You said hello."), Exchange("stop", None), Exchange("why", "Because [interrupted]")]


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as url:  # a real redis-server on a free loopback port, stopped after the module
        yield url


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request, tmp_path):
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "sqlite":
        made = SqliteStore(str(tmp_path / "c.db"))
    else:
        made = open_store(request.getfixturevalue("redis_url"))
    yield made
    await made.aclose()


async def test_a_saved_history_loads_back_and_unknown_ids_are_none(store) -> None:
    cid = new_conversation_id()
    assert await store.load(cid) is None
    await store.save(cid, HISTORY)
    assert await store.load(cid) == HISTORY
    await store.save(cid, HISTORY[:1])  # a save replaces
    assert await store.load(cid) == HISTORY[:1]
    assert await store.load(new_conversation_id()) is None
    await store.check()


async def test_an_expired_conversation_is_unknown(store) -> None:
    store.ttl_s = 0.05
    cid = new_conversation_id()
    await store.save(cid, HISTORY)
    await asyncio.sleep(0.15)
    assert await store.load(cid) is None


async def test_an_unreachable_redis_fails_its_check(tmp_path) -> None:
    from flow.testing.cluster import free_port

    store = open_store(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(Exception, match=r"(?i)connect"):
        await store.check()
    await store.aclose()


async def test_sqlite_keeps_conversations_across_instances(tmp_path) -> None:
    first = SqliteStore(str(tmp_path / "c.db"))
    cid = new_conversation_id()
    await first.save(cid, HISTORY)
    await first.aclose()
    second = SqliteStore(str(tmp_path / "c.db"))
    assert await second.load(cid) == HISTORY
    await second.aclose()


def test_ids_are_128_bit_random_and_checked_before_any_lookup() -> None:
    ids = {new_conversation_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) == 22 and valid_id(i) for i in ids)
    for bad in (None, 7, "", "short", "x" * 65, "../../etc/passwd", "a b c d e f g h i j"):
        assert not valid_id(bad)


def test_records_round_trip_and_garbage_reads_as_empty() -> None:
    assert decode(encode(HISTORY)) == HISTORY
    assert decode("not json") == [] and decode("{}") == [] and decode('[[1, 2], ["a"]]') == []


def test_open_store_reads_the_url(tmp_path) -> None:
    assert isinstance(open_store(None), MemoryStore) and isinstance(open_store("memory"), MemoryStore)
    sqlite = open_store(f"sqlite:///{tmp_path}/x.db")
    assert isinstance(sqlite, SqliteStore) and sqlite.path == f"{tmp_path}/x.db"
    with pytest.raises(ValueError, match="unknown store 'postgres'"):
        open_store("postgres://x")


async def test_saves_are_coalesced_and_the_latest_history_wins() -> None:
    class Counting(MemoryStore):
        writes = 0

        async def save(self, conversation_id, history):
            Counting.writes += 1
            await asyncio.sleep(0.01)
            await super().save(conversation_id, history)

    store = Counting()
    conv = Conversation(new_conversation_id(), store)
    for n in range(1, len(HISTORY) + 1):
        conv.save(HISTORY[:n])
    await conv.flush()
    assert await store.load(conv.id) == HISTORY
    assert Counting.writes == 1  # the writer starts after the burst: one write carries the latest


async def test_the_memory_store_keeps_at_most_its_bound_the_least_recently_saved_go() -> None:
    store = MemoryStore(max_conversations=3)
    ids = [new_conversation_id() for _ in range(5)]
    for cid in ids:
        await store.save(cid, HISTORY)
    await store.save(ids[2], HISTORY[:1])  # saved again: now the most recent
    await store.save(new_conversation_id(), HISTORY)
    kept = [cid for cid in ids if await store.load(cid) is not None]
    assert kept == [ids[2], ids[4]]
