"""GcsStore: the ObjectStore on Google Cloud Storage (real GCS or fake-gcs-server).

Every write goes through the multipart upload path: fake-gcs-server ignores preconditions on resumable
uploads (local-stack.md), and the client switches to resumable above ``_MAX_MULTIPART_SIZE`` or when a
``chunk_size`` is set. We never set ``chunk_size`` and, in emulator mode, raise that threshold.
"""

from __future__ import annotations

import builtins

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage import blob as blob_module

from servo.core.errors import PreconditionFailed
from servo.store._names import (
    check_data,
    check_generation,
    check_limit,
    normalize_offset,
    validate_name,
    validate_prefix,
)
from servo.store._port import DEFAULT_CONTENT_TYPE, ObjectMeta, StoredObject

# Servo objects are small; this only has to exceed anything we write so the emulator stays on multipart.
EMULATOR_MULTIPART_LIMIT = 1 << 30
_EMULATOR_PROJECT = "servo-local"


class GcsStore:
    """An ObjectStore on one GCS bucket.

    Args:
        client: a ``google.cloud.storage.Client`` (created by the caller, at the edge).
        bucket: the bucket name.
    """

    def __init__(self, client: storage.Client, bucket: str) -> None:
        self._client = client
        self._bucket = client.bucket(bucket)  # no request: a local handle

    @property
    def bucket_name(self) -> str:
        name: str = self._bucket.name
        return name

    def get(self, name: str) -> StoredObject | None:
        blob = self._bucket.blob(validate_name(name))
        try:
            # One request: the generation comes back in the download's x-goog-generation header, so the
            # bytes and generation always belong together.
            data = blob.download_as_bytes()
        except gexc.NotFound:
            return None
        return StoredObject(name, data, int(blob.generation))

    def create(self, name: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE) -> int:
        return self._upload(name, data, 0, content_type)

    def put(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> int:
        return self._upload(name, data, check_generation(if_generation_match), content_type)

    def _upload(self, name: str, data: bytes, expected: int | None, content_type: str) -> int:
        blob = self._bucket.blob(validate_name(name))
        check_data(data)
        try:
            blob.upload_from_string(data, content_type=content_type, if_generation_match=expected)
        except gexc.PreconditionFailed as exc:
            raise _precondition(name, expected) from exc
        return int(blob.generation)

    def list(
        self,
        prefix: str,
        *,
        start_offset: str | None = None,
        end_offset: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[ObjectMeta]:
        blobs = self._client.list_blobs(
            self._bucket,
            prefix=validate_prefix(prefix) or None,
            start_offset=normalize_offset(start_offset, "start_offset"),
            end_offset=normalize_offset(end_offset, "end_offset"),
            max_results=check_limit(limit),
            fields="items(name,generation,size),nextPageToken",
        )
        return [ObjectMeta(b.name, int(b.generation), int(b.size)) for b in blobs]

    def delete(self, name: str, *, if_generation_match: int | None = None) -> bool:
        blob = self._bucket.blob(validate_name(name))
        expected = check_generation(if_generation_match)
        try:
            blob.delete(if_generation_match=expected)
        except gexc.NotFound:
            return False
        except gexc.PreconditionFailed as exc:
            raise _precondition(name, expected) from exc
        return True


def _precondition(name: str, expected: int | None) -> PreconditionFailed:
    what = "object already exists" if expected == 0 else f"generation is not {expected}"
    return PreconditionFailed(
        f"precondition failed for {name!r}: {what}", details={"name": name, "expected": expected}
    )


def gcs_store_from_env(bucket: str, endpoint: str | None, *, project: str | None = None) -> GcsStore:
    """Build a GcsStore with a fresh client.

    Args:
        bucket: the bucket name.
        endpoint: the emulator's URL (``http://127.0.0.1:PORT``), or None for real GCS with Application
            Default Credentials.
        project: the project id; defaults to the environment's (real GCS) or ``servo-local`` (emulator).
    """
    if endpoint:
        # Module-global in the client library; raising it is the only way to keep large writes on the
        # multipart path, where the emulator honours preconditions.
        blob_module._MAX_MULTIPART_SIZE = max(blob_module._MAX_MULTIPART_SIZE, EMULATOR_MULTIPART_LIMIT)
        client = storage.Client(
            project=project or _EMULATOR_PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": endpoint},
        )
    else:
        client = storage.Client(project=project)
    return GcsStore(client, bucket)
