"""Allocating addresses through the service: concurrent writers, retries, a crowded /16."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import event, insert, select, text

from metalyard.auth.actor import Actor
from metalyard.auth.scopes import Scope
from metalyard.inventory import service as inventory
from metalyard.inventory.schemas import AssetCreate, SiteCreate
from metalyard.network import service
from metalyard.network.models import IpAllocation
from metalyard.network.schemas import IpAllocationCreate, PrefixCreate, ReservedRangeCreate

ACTOR = Actor(name="test", scope=Scope.ADMIN, user_id=None, token_id=None)
THREADS = 12


def seed(database, cidr: str, assets: int, **prefix_fields) -> int:
    """A site `dub1`, one prefix, and assets SN000… with interface eno1; the prefix's id."""
    with database.transaction() as session:
        inventory.create_site(session, data=SiteCreate(name="dub1"))
        for n in range(assets):
            data = AssetCreate(
                serial=f"SN{n:03d}",
                interfaces=[{"name": "eno1", "mac": f"52:54:00:00:{n // 256:02x}:{n % 256:02x}"}],
            )
            inventory.create_asset(session, data=data, actor=ACTOR)
        data = PrefixCreate(site="dub1", cidr=cidr, role="bmc", **prefix_fields)
        return service.create_prefix(session, data=data).id


def allocate(database, serial: str, prefix_id: int, **fields) -> str:
    with database.transaction() as session:
        data = IpAllocationCreate(serial=serial, interface="eno1", prefix_id=prefix_id, **fields)
        return service.allocate(session, data=data).allocation["address"]


def test_concurrent_allocations_get_distinct_addresses(database):
    prefix_id = seed(database, "10.20.0.0/24", THREADS)
    start = threading.Barrier(THREADS, timeout=30)

    def one(n: int) -> str:
        start.wait()
        return allocate(database, f"SN{n:03d}", prefix_id)

    with ThreadPoolExecutor(THREADS) as pool:
        addresses = list(pool.map(one, range(THREADS)))
    assert sorted(addresses, key=lambda a: int(a.rsplit(".", 1)[1])) == [
        f"10.20.0.{n}" for n in range(1, THREADS + 1)
    ]


def test_writers_that_chose_the_same_address_retry_until_each_has_its_own(database, monkeypatch):
    """Every writer picks the lowest free address before any of them inserts it: all but one
    hit the unique constraint, roll back to their savepoint, and look again."""
    if database.is_sqlite:
        pytest.skip("SQLite runs one writer at a time: no two can choose at once")
    prefix_id = seed(database, "10.21.0.0/24", THREADS)
    chose = threading.Barrier(THREADS, timeout=30)
    first_choice = threading.local()
    lowest_free = service._lowest_free
    retries = []

    def in_step(session, prefix, never):
        offset = lowest_free(session, prefix, never)
        if getattr(first_choice, "made", False):
            retries.append(offset)
        else:
            first_choice.made = True
            chose.wait()
        return offset

    monkeypatch.setattr(service, "_lowest_free", in_step)
    with ThreadPoolExecutor(THREADS) as pool:
        addresses = list(pool.map(lambda n: allocate(database, f"SN{n:03d}", prefix_id), range(12)))
    assert len(set(addresses)) == THREADS
    assert {int(a.rsplit(".", 1)[1]) for a in addresses} == set(range(1, THREADS + 1))
    assert len(retries) >= THREADS - 1  # every loser of the first round looked again


def test_a_lost_race_rolls_back_to_the_savepoint_only(database, monkeypatch):
    """The insert that hits the constraint is undone alone: the transaction's earlier writes
    stay, and the retry takes the next free address."""
    prefix_id = seed(database, "10.22.0.0/29", 3)
    allocate(database, "SN000", prefix_id)  # holds .1
    stale = iter([1])  # as a writer that read before SN000's commit would choose
    lowest_free = service._lowest_free
    monkeypatch.setattr(
        service, "_lowest_free", lambda *args: next(stale, None) or lowest_free(*args)
    )
    with database.transaction() as session:
        first = service.allocate(
            session,
            data=IpAllocationCreate(serial="SN001", interface="eno1", prefix_id=prefix_id),
        )
        monkeypatch.setattr(service, "_lowest_free", lowest_free)
        second = service.allocate(
            session,
            data=IpAllocationCreate(serial="SN002", interface="eno1", prefix_id=prefix_id),
        )
    assert first.allocation["address"] == "10.22.0.2" and first.created
    assert second.allocation["address"] == "10.22.0.3"
    with database.transaction(write=False) as session:
        assert session.scalars(select(IpAllocation.address).order_by("id")).all() == [
            "10.22.0.1",
            "10.22.0.2",
            "10.22.0.3",
        ]


def test_the_lowest_free_address_of_a_crowded_slash_16_takes_one_query(database):
    """30,000 addresses allocated with one hole: the search finds the hole with one statement,
    then the address after the last one, without walking addresses in Python, even while
    PostgreSQL's statistics still describe a nearly empty table."""
    prefix_id = seed(database, "10.16.0.0/16", 1)
    with database.transaction() as session:
        service.reserve_range(
            session,
            prefix_id=prefix_id,
            data=ReservedRangeCreate(start="10.16.0.1", end="10.16.0.20", reason="switches"),
        )
        asset_id = inventory.get_asset(session, serial="SN000").id
        taken = [o for o in range(21, 30_021) if o != 25_000]
        session.execute(
            insert(IpAllocation),
            [
                {
                    "prefix_id": prefix_id,
                    "address": f"10.16.{o // 256}.{o % 256}",
                    "host_offset": o,
                    "asset_id": asset_id,
                    "interface": f"if{o}",
                }
                for o in taken
            ],
        )
    if not database.is_sqlite:
        # As autovacuum may leave them for a while after a burst: statistics of a small
        # table. An anti-join of the table with itself then ran 68-77 s (a nested loop).
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "UPDATE pg_class SET reltuples = 1, relpages = 1 "
                    "WHERE relname = 'ip_allocations'"
                )
            )
    statements = []

    def record(conn, cursor, statement, *args):
        if "coalesce(" in statement.lower():
            statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        started = time.perf_counter()
        hole = allocate(database, "SN000", prefix_id)
        elapsed = time.perf_counter() - started
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    assert hole == "10.16.97.168"  # offset 25,000
    assert len(statements) == 1
    assert elapsed < 2.0, f"{elapsed:.3f}s for one allocation in a crowded /16"
    with database.transaction() as session:
        service.release_interface(session, serial="SN000", interface="eno1")
        asset_id = inventory.get_asset(session, serial="SN000").id
        session.execute(
            insert(IpAllocation),
            [
                {
                    "prefix_id": prefix_id,
                    "address": "10.16.97.168",
                    "host_offset": 25_000,
                    "asset_id": asset_id,
                    "interface": "if25000",
                }
            ],
        )
    assert allocate(database, "SN000", prefix_id) == "10.16.117.69"  # offset 30,021


def test_ipv6_prefixes_allocate_from_the_bottom_and_refuse_beyond_the_limit(database):
    prefix_id = seed(database, "2001:db8:0:1::/64", 2, gateway="2001:db8:0:1::1")
    with database.transaction() as session:  # offsets up to 2**64: beyond a BIGINT
        upper = ReservedRangeCreate(
            start="2001:db8:0:1:8000::", end="2001:db8:0:1:ffff:ffff:ffff:ffff", reason="SLAAC"
        )
        service.reserve_range(session, prefix_id=prefix_id, data=upper)
    assert allocate(database, "SN000", prefix_id) == "2001:db8:0:1::2"
    with pytest.raises(Exception, match="beyond the first 2\\*\\*62 addresses"):
        allocate(database, "SN001", prefix_id, address="2001:db8:0:1:ffff::1")
    assert allocate(database, "SN001", prefix_id, address="2001:db8:0:1::abcd") == (
        "2001:db8:0:1::abcd"
    )
