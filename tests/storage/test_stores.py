"""Both stores honour the same protocol; S3 runs against a real SeaweedFS; retries overwrite."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest

from fasttts.config import Settings
from fasttts.errors import NotFoundError
from fasttts.storage import LocalStore, ObjectStore, StorageUnavailableError, segment_key, store_from_settings
from fasttts.storage.s3 import S3Store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[ObjectStore]:
    if request.param == "local":
        made: ObjectStore = LocalStore(tmp_path / "objects")
    else:
        sw = request.getfixturevalue("seaweed")
        made = S3Store(sw.bucket, prefix=f"t-{tmp_path.name}/", endpoint_url=sw.endpoint, access_key_id="k", secret_access_key="s")
    yield made
    made.close()


def test_put_get_exists_delete(store: ObjectStore) -> None:
    key = segment_key("job1", 3)
    assert not store.exists(key)
    store.put(key, b"\x00\x01first")
    store.put(key, b"second")  # a retried segment overwrites its key
    assert store.get(key) == b"second"
    assert store.exists(key)
    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(NotFoundError):
        store.get(key)
    store.delete(key)  # deleting a missing object is fine


def test_delete_prefix_removes_only_that_job(store: ObjectStore) -> None:
    for i in range(3):
        store.put(segment_key("a", i), b"x")
    store.put(segment_key("b", 0), b"y")
    assert store.delete_prefix("jobs/a/") == 3
    assert not store.exists(segment_key("a", 0))
    assert store.get(segment_key("b", 0)) == b"y"


def test_s3_presigned_url_downloads(seaweed, tmp_path) -> None:
    store = S3Store(seaweed.bucket, prefix="p/", endpoint_url=seaweed.endpoint, access_key_id="k", secret_access_key="s")
    store.put("jobs/x/result/audio.mp3", b"ID3fake", content_type="audio/mpeg")
    url = store.url("jobs/x/result/audio.mp3", expires_s=60, filename="audio.mp3")
    store.close()
    with urllib.request.urlopen(url) as r:
        assert r.read() == b"ID3fake"
        assert "audio.mp3" in r.headers["Content-Disposition"]


def test_s3_unreachable_is_unavailable_not_crash() -> None:
    from service_fixtures import free_port

    store = S3Store("b", endpoint_url=f"http://127.0.0.1:{free_port()}", access_key_id="k", secret_access_key="s")
    with pytest.raises(StorageUnavailableError):
        store.check()
    with pytest.raises(StorageUnavailableError):
        store.put("k", b"x")
    store.close()


def test_local_store_refuses_keys_outside_root(tmp_path) -> None:
    store = LocalStore(tmp_path / "o")
    with pytest.raises(Exception, match="escapes"):
        store.put("../evil", b"x")


def test_store_from_settings_picks_local_or_s3(tmp_path) -> None:
    assert isinstance(store_from_settings(Settings(data_dir=tmp_path)), LocalStore)
    s3 = store_from_settings(Settings(data_dir=tmp_path, s3_bucket="bkt", s3_endpoint_url="http://127.0.0.1:1"))
    assert isinstance(s3, S3Store) and s3.bucket == "bkt"
    s3.close()
