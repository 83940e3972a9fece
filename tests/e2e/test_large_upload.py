"""A 1 GiB upload streamed through blobd: content address, stored bytes
and the daemon's peak memory."""

import hashlib
import os
import struct

from conftest import Tenant

GIB = 1 << 30
MIB = 1 << 20
# The daemon streams bodies to disk, so its peak resident set size must not
# grow with the upload size. This bound is far below the 1 GiB body.
MAX_RSS = 200 * MIB


class GeneratedBody:
    """Sized iterable of `total` bytes in 1 MiB chunks, hashed while it is
    sent. Each chunk starts with its index, so no two chunks are equal."""

    def __init__(self, total, chunk=MIB):
        assert total % chunk == 0
        self.total = total
        self.chunk = chunk
        self.block = os.urandom(chunk)
        self.digest = hashlib.sha256()
        self.sent = 0

    def __len__(self):
        return self.total

    def __iter__(self):
        for index in range(self.total // self.chunk):
            data = struct.pack(">Q", index) + self.block[8:]
            self.digest.update(data)
            self.sent += len(data)
            yield data


def test_large_upload_1gib(blobd):
    server = blobd(limits={"max_upload_bytes": 2 * GIB})
    tenant = Tenant(server, users=1)
    client = tenant.users[0].client
    body = GeneratedBody(GIB)
    response = client.upload(body)
    assert response.status_code == 201, response.text
    assert body.sent == GIB
    view = response.json()
    assert view["id"] == body.digest.hexdigest()
    assert view["size"] == GIB
    assert view["original_size"] == GIB
    assert tenant.view()["used_bytes"] == GIB
    peak = server.vm_hwm_bytes()
    print(f"blobd VmHWM after the 1 GiB upload: {peak / MIB:.1f} MiB")
    assert peak < MAX_RSS

    download = client.get(f"/v1/blobs/{view['id']}", stream=True)
    assert download.status_code == 200
    assert download.headers["Content-Length"] == str(GIB)
    digest = hashlib.sha256()
    received = 0
    for data in download.iter_content(chunk_size=MIB):
        digest.update(data)
        received += len(data)
    assert received == GIB
    assert digest.hexdigest() == view["id"]
    peak = server.vm_hwm_bytes()
    print(f"blobd VmHWM after the 1 GiB download: {peak / MIB:.1f} MiB")
    assert peak < MAX_RSS


def test_large_upload_range_tail(blobd):
    server = blobd(limits={"max_upload_bytes": 2 * GIB})
    tenant = Tenant(server, users=1)
    client = tenant.users[0].client
    body = GeneratedBody(256 * MIB)
    view = client.upload_ok(body)
    start = 256 * MIB - 10
    response = client.get(f"/v1/blobs/{view['id']}",
                          headers={"Range": f"bytes={start}-"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == \
        f"bytes {start}-{256 * MIB - 1}/{256 * MIB}"
    assert response.content == body.block[-10:]
