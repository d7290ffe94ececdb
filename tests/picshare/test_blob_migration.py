"""`run.py blobs migrate --to s3`: a local store copied to a real S3 API
(moto's server), resumable, with its progress bar."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from aiobotocore.session import get_session

from storage.local_blobs import LocalBlobStore

ROOT = Path(__file__).resolve().parent.parent.parent


def _migrate(data_dir: Path, endpoint: str, bucket: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "blobs", "migrate", "--to", "s3"],
        env={
            **os.environ,
            "PICSHARE_DATA_DIR": str(data_dir),
            "PICSHARE_S3_BUCKET": bucket,
            "PICSHARE_S3_ENDPOINT_URL": endpoint,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_migrate_copies_every_blob_once_and_resumes(
    tmp_path: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    data_dir = tmp_path / "data"
    local = LocalBlobStore(data_dir / "blobs")
    big = os.urandom(6 * 1024 * 1024)  # more than one part: a multipart upload
    blobs = {f"uploads/{hashlib.sha256(big).hexdigest()}": big}
    for i in range(3):
        data = f"rendition {i}".encode()
        blobs[f"r/{hashlib.sha256(data).hexdigest()}.jpg"] = data
    for key, data in blobs.items():
        await local.put_bytes(key, data)

    first = _migrate(data_dir, s3_endpoint, s3_bucket)
    assert first.returncode == 0, first.stderr
    assert "copied 4 blobs" in first.stdout
    assert "4/4" in first.stderr  # the progress bar
    async with get_session().create_client("s3", endpoint_url=s3_endpoint) as s3:
        for key, data in blobs.items():
            got = await s3.get_object(Bucket=s3_bucket, Key=key)
            async with got["Body"] as body:
                assert await body.read() == data
        listed = await s3.list_objects_v2(Bucket=s3_bucket)
        assert len(listed["Contents"]) == 4  # no temporary objects left
        # Stopped halfway: one object missing, the rest there.
        await s3.delete_object(Bucket=s3_bucket, Key=next(iter(blobs)))

    again = _migrate(data_dir, s3_endpoint, s3_bucket)
    assert again.returncode == 0, again.stderr
    assert "copied 1 blobs" in again.stdout
    assert "3 already in" in again.stdout
