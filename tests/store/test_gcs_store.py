"""GcsStore specifics against fake-gcs-server: the emulator traps of local-stack.md stay closed."""

from __future__ import annotations

import subprocess
import sys

import pytest
from servo.core.errors import PreconditionFailed
from servo.dev.fake_gcs import FakeGcsServer
from servo.store import ObjectStore, ScopedStore
from servo.store.gcs import GcsStore, gcs_store_from_env

from tests.support.fake_gcs import fresh_bucket


@pytest.fixture
def gcs(fake_gcs: FakeGcsServer) -> GcsStore:
    return gcs_store_from_env(fresh_bucket(fake_gcs), fake_gcs.endpoint)


@pytest.mark.emulator
def test_large_objects_stay_on_the_multipart_path_and_keep_preconditions(gcs: GcsStore) -> None:
    # Above 8 MiB the client would switch to a resumable upload, where the emulator ignores preconditions.
    big = b"x" * (9 * 1024 * 1024)
    g1 = gcs.create("big.bin", big)
    with pytest.raises(PreconditionFailed):
        gcs.create("big.bin", big)
    g2 = gcs.put("big.bin", big + b"y", if_generation_match=g1)
    with pytest.raises(PreconditionFailed):
        gcs.put("big.bin", big, if_generation_match=g1)
    got = gcs.get("big.bin")
    assert got is not None and got.generation == g2 and len(got.data) == len(big) + 1


@pytest.mark.emulator
def test_scoped_gcs_store_writes_under_the_workspace(gcs: GcsStore) -> None:
    scoped: ObjectStore = ScopedStore(gcs, "acme", "prod")
    scoped.create("ledger/orchestration/e.json", b"{}")
    assert [m.name for m in gcs.list("")] == ["acme/prod/ledger/orchestration/e.json"]
    assert [m.name for m in scoped.list("ledger/")] == ["ledger/orchestration/e.json"]


@pytest.mark.emulator
def test_content_type_is_stored(gcs: GcsStore, fake_gcs: FakeGcsServer) -> None:
    gcs.create("logs/r/t/attempt-1.log", b"out", content_type="text/plain")
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project="p", credentials=AnonymousCredentials(), client_options={"api_endpoint": fake_gcs.endpoint}
    )
    blob = client.bucket(gcs.bucket_name).get_blob("logs/r/t/attempt-1.log")
    assert blob is not None and blob.content_type == "text/plain"


def test_importing_the_port_does_not_import_the_gcs_client() -> None:
    code = "import sys, servo.store; assert 'google.cloud.storage' not in sys.modules; servo.store.GcsStore"
    subprocess.run([sys.executable, "-c", code], check=True)
