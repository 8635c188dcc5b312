"""One exchange per record: the claim is one row under a fixed key, so two ingests racing on an empty database
cannot both win; an identity, not an address, decides; an older claim (a URL) is migrated or taken over."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime

import pymongo
import pytest

from klines.models import ExchangeSource
from klines.store.exchange import RecordClaimedError, claim_record
from klines.testing.servers import SecantusServer, manage, service_env
from tests.helpers import migrate

SIM = "simulated:seed=1,speed=1"
CLAIMER = """
import time
from klines.store.exchange import RecordClaimedError, claim_record
go = {go!r}
time.sleep(max(0.0, go - time.time() - 0.05))
while time.time() < go:
    pass
try:
    claim_record({source!r}, rest_url={rest_url!r})
    print("claimed", flush=True)
except RecordClaimedError as exc:
    print("refused:", exc, flush=True)
"""


@pytest.mark.django_db(transaction=True)
def test_the_same_source_at_another_address_is_accepted_and_another_source_refused() -> None:
    claim_record(SIM, rest_url="http://127.0.0.1:9900")
    claim_record(SIM, rest_url="http://localhost:9901")  # a second `make simulate` on another SIMULATE_PORT
    assert ExchangeSource.objects.get().rest_url == "http://localhost:9901"
    with pytest.raises(RecordClaimedError) as refused:
        claim_record("simulated:seed=1,speed=60,epoch=1764800000000", rest_url="http://127.0.0.1:9900")
    assert str(refused.value) == (
        f"this database holds klines from {SIM}, not simulated:seed=1,speed=60,epoch=1764800000000 "
        "(http://127.0.0.1:9900); set MONGO_DATABASE to another database for this exchange "
        "(klines of two exchanges never mix)"
    )
    assert list(ExchangeSource.objects.values_list("source", flat=True)) == [SIM]


@pytest.mark.django_db(transaction=True)
def test_a_password_in_the_url_is_neither_kept_nor_shown() -> None:
    claim_record("my-exchange", rest_url="http://mirror:s3cret@127.0.0.1:9900")
    assert ExchangeSource.objects.get().rest_url == "http://127.0.0.1:9900"
    with pytest.raises(RecordClaimedError) as refused:
        claim_record("binance-usdm", rest_url="https://user:s3cret@fapi.binance.com")
    assert "s3cret" not in str(refused.value) and "(https://fapi.binance.com)" in str(refused.value)


@pytest.mark.django_db(transaction=True)
def test_an_older_claim_of_an_address_is_taken_over_by_that_address_only() -> None:
    ExchangeSource.objects.create(rest_url="http://localhost:9900")  # kept by a version that knew only the URL
    with pytest.raises(RecordClaimedError, match="^this database holds klines from http://localhost:9900, not "):
        claim_record(SIM, rest_url="http://127.0.0.1:9901")
    claim_record(SIM, rest_url="http://127.0.0.1:9900")  # the address the old guard accepted, whatever it is called
    assert ExchangeSource.objects.get().source == SIM
    claim_record(SIM, rest_url="http://127.0.0.1:9901")


def test_of_claimers_racing_on_an_empty_database_exactly_one_wins(secantus: SecantusServer, database: str) -> None:
    env = service_env(secantus.uri, database)
    claims = pymongo.MongoClient(secantus.uri)[database]["exchange_source"]
    rounds, winners = 4, []
    for round_ in range(rounds):
        claims.delete_many({})
        go = time.time() + 4.0  # every claimer has started Django by then (about 1.5 s each on a busy machine)
        claimers = [
            manage(
                ["shell", "--no-imports", "-c", CLAIMER.format(go=go, source=source, rest_url=f"http://127.0.0.1:{n}")],
                env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for n, source in enumerate(["binance-usdm", SIM, "my-exchange"], 9900)
        ]
        results = [claimer.communicate(timeout=60)[0].strip() for claimer in claimers]
        assert all(claimer.returncode == 0 for claimer in claimers), results
        assert sorted(r.split(":")[0] for r in results) == ["claimed", "refused", "refused"], (round_, results)
        rows = list(claims.find({}, {"_id": 0, "source": 1}))
        assert len(rows) == 1, (round_, rows)
        winner = rows[0]["source"]
        assert all(f"holds klines from {winner}, not" in r for r in results if r.startswith("refused")), results
        winners.append(winner)
    print(f"winners of {rounds} races: {winners}")


def test_the_migration_keeps_one_claim_and_names_binance_s(secantus: SecantusServer) -> None:
    name = f"claim_migration_{time.time_ns()}"
    env = service_env(secantus.uri, name)
    client = pymongo.MongoClient(secantus.uri)
    try:
        assert manage(["migrate", "--noinput", "-v0", "klines", "0002"], env).wait(120) == 0
        claims = client[name]["exchange_source"]
        # Two claims: what two ingests racing on an empty database could leave (each then refused every start).
        claims.insert_one(
            {
                "rest_url": "https://fapi.binance.com",
                "claimed_at": datetime(2026, 11, 1, tzinfo=UTC),
                "exchange_info": "{}",
            }
        )
        claims.insert_one(
            {"rest_url": "http://127.0.0.1:9900", "claimed_at": datetime(2026, 11, 2, tzinfo=UTC), "exchange_info": ""}
        )
        migrate(secantus.uri, name)
        rows = list(claims.find({}, {"_id": 0, "source": 1, "rest_url": 1, "record": 1}))
        assert rows == [{"rest_url": "https://fapi.binance.com", "source": "binance-usdm", "record": 1}]
    finally:
        client.drop_database(name)
