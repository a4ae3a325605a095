"""Any S3-compatible endpoint via boto3 (AWS, MinIO, SeaweedFS, R2 ...).

Connection failures become :class:`StorageUnavailableError` (the API answers 503 with Retry-After);
retries are bounded and timeouts short so an outage is reported quickly instead of hanging a request.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from botocore.exceptions import ConnectionError as BotoConnectionError

from fasttts.errors import NotFoundError
from fasttts.storage.base import StorageError, StorageUnavailableError

_UNREACHABLE = (EndpointConnectionError, BotoConnectionError)


class S3Store:
    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        config = Config(
            connect_timeout=3,
            read_timeout=30,
            retries={"max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": "path"} if endpoint_url else None,
            signature_version="s3v4",
        )
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region or "us-east-1",
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )

    def _k(self, key: str) -> str:
        return self.prefix + key

    def _call(self, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except _UNREACHABLE as e:
            raise StorageUnavailableError(f"object store unreachable: {e}") from e
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise NotFoundError(f"stored object {kwargs.get('Key')!r} not found") from e
            if code in ("SlowDown", "ServiceUnavailable", "503", "InternalError", "RequestTimeout"):
                raise StorageUnavailableError(f"object store busy: {code}") from e
            raise StorageError(f"S3 {fn.__name__} failed: {code or e}") from e
        except BotoCoreError as e:
            raise StorageUnavailableError(f"object store error: {e}") from e

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        self._call(self.client.put_object, Key=self._k(key), Body=data, **extra)

    def get(self, key: str) -> bytes:
        data: bytes = self._call(self.client.get_object, Key=self._k(key))["Body"].read()
        return data

    def delete(self, key: str) -> None:
        self._call(self.client.delete_object, Key=self._k(key))

    def exists(self, key: str) -> bool:
        try:
            self._call(self.client.head_object, Key=self._k(key))
            return True
        except NotFoundError:
            return False

    def list(self, prefix: str) -> list[str]:
        """Keys (without the store prefix) under ``prefix``."""
        keys: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = self._call(self.client.list_objects_v2, Prefix=self._k(prefix), **token)
            keys += [o["Key"][len(self.prefix) :] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for i in range(0, len(keys), 1000):
            batch = [{"Key": self._k(k)} for k in keys[i : i + 1000]]
            self._call(self.client.delete_objects, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def url(self, key: str, expires_s: int = 3600, filename: str | None = None) -> str | None:
        params: dict[str, str] = {"Bucket": self.bucket, "Key": self._k(key)}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        url: str = self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s)
        return url

    def check(self) -> None:
        self._call(self.client.head_bucket)

    def close(self) -> None:
        """Close the client's pooled HTTP connections."""
        self.client.close()
