"""A store on S3 (moto's server mode on 127.0.0.1): created, migrated and verified through
``storage_options``, and opened by pylance and lancedb with the same options."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator

import lance
import lancedb
import pytest
from moto.server import ThreadedMotoServer

import memlane
from conftest import REEMBED, HashingModel, corpus, write_migration


@pytest.fixture(scope="module")
def s3() -> Iterator[Dict[str, str]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {
        "aws_endpoint": f"http://{host}:{port}",
        "aws_access_key_id": "memlane",
        "aws_secret_access_key": "memlane",
        "aws_region": "us-east-1",
        "allow_http": "true",
    }
    import boto3  # moto depends on it

    boto3.client(
        "s3",
        endpoint_url=options["aws_endpoint"],
        aws_access_key_id="memlane",
        aws_secret_access_key="memlane",
        region_name="us-east-1",
    ).create_bucket(Bucket="memlane-py")
    yield options
    server.stop()


def test_a_store_on_s3_migrates_and_pylance_and_lancedb_read_it(s3: Dict[str, str], tmp_path: Path) -> None:
    # LanceDB names a table after its directory without `.lance`
    uri = "s3://memlane-py/agent.lance"
    recs = [{"id": r["id"], "content": r["content"]} for r in corpus(150)]
    space = memlane.Space("old", 64, provider="test", model="hash64", revision="1", normalized=True)
    store = memlane.create(uri, [space], data=recs, embedders={"old": HashingModel(64)}, storage_options=s3)
    folder = tmp_path / "migrations"
    write_migration(
        folder, "0001_new.toml", REEMBED.format(space="new", model="hash96", dim=96, embedder="new", extra="")
    )
    report = store.apply(folder, embedders={"new": HashingModel(96, seed=1)})
    assert report.ok
    again = memlane.open(uri, storage_options=s3)
    assert again.status()["active_space"] == "new"
    assert again.verify(folder).ok
    assert again.coverage("new") == (150, 150)

    # the same objects, read by Lance's own Python package and by LanceDB
    ds = lance.dataset(uri, storage_options=s3)
    assert ds.count_rows() == 150
    assert ds.version == again.version
    assert "vec_new" in ds.schema.names
    db = lancedb.connect("s3://memlane-py", storage_options=s3)
    table = db.open_table("agent")
    assert table.count_rows() == 150
    q = HashingModel(96, seed=1)([recs[7]["content"]])[0]
    hit = table.search(q, vector_column_name="vec_new").limit(1).to_list()[0]
    assert hit["id"] == recs[7]["id"]


def test_lock_and_unlock_on_s3(s3: Dict[str, str], tmp_path: Path) -> None:
    uri = "s3://memlane-py/locked"
    memlane.create(uri, [], data=[{"id": "a", "content": "x"}], storage_options=s3)
    assert memlane.unlock(uri, storage_options=s3) is None
