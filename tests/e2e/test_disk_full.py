"""A full disk: blobd's data directory on a small tmpfs that the test mounts
(needs root), filled by uploads and then by a filler file beside the data
directory.

blobd keeps [limits] min_free_bytes free for its databases. Uploads that
would take the disk below it get 507 insufficient_storage and leave nothing
behind, while small database writes go on. Below the reserve, every write
gets 507 except those that free space (purge), and reads go on. With the
disk completely full, every write gets 507. Once space is freed, uploads
work again, and `blobd check` accepts the data.
"""

import datetime
import errno
import os
import subprocess
import time

import pytest

from conftest import Tenant, error_code, random_bytes, sha256_hex

TMPFS_SIZE = 32 << 20
MIN_FREE = 2 << 20
UPLOAD_SIZE = 1 << 20
MAX_UPLOADS = 64


def mount_tmpfs(path):
    path.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs",
         str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"mount -t tmpfs failed (the test needs root): "
                    f"{result.stderr.strip()}")


def free_bytes(path):
    fs = os.statvfs(path)
    return fs.f_bavail * fs.f_frsize


def fill_disk(filler, leave=0):
    """Append zeros to `filler` until at most `leave` bytes are free, or,
    with `leave` = 0, until even a one-byte write fails with ENOSPC."""
    with open(filler, "ab", buffering=0) as out:
        for step in (64 << 10, 4096, 1):
            while free_bytes(filler.parent) > leave:
                room = free_bytes(filler.parent) - leave
                try:
                    out.write(bytes(min(step, room)))
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    assert free_bytes(filler.parent) <= leave


def tmp_files(server, cid):
    return sorted(os.listdir(server.data_dir / "contracts" / cid / "tmp"))


def blob_files(server, cid):
    root = server.data_dir / "contracts" / cid / "blobs"
    return sorted(p.name for p in root.rglob("*") if p.is_file())


def assert_insufficient_storage(response):
    assert response.status_code == 507, response.text
    assert error_code(response) == "insufficient_storage"


def assert_blobs_readable(client, stored):
    for blob_id, data in stored.items():
        response = client.get(f"/v1/blobs/{blob_id}")
        assert response.status_code == 200
        assert sha256_hex(response.content) == blob_id
        assert response.content == data


def rfc3339(seconds):
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_disk_full(blobd, tmp_path):
    mount = tmp_path / "fs"
    mount_tmpfs(mount)
    server = blobd(limits={"min_free_bytes": MIN_FREE}, start=False)
    server.data_dir = mount / "data"
    try:
        server.start()
        run_disk_full(server, mount / "filler")
        assert server.stop() == 0
        status, output = server.check()
        assert status == 0, output
    finally:
        if server.running:
            server.kill()
        subprocess.run(["umount", str(mount)], check=False)


def run_disk_full(server, filler):
    tenant = Tenant(server, users=1)
    cid = tenant.cid
    user = tenant.users[0].client
    group = tenant.group([tenant.users[0]])
    stored = {}

    # Upload until the first 507. The first four uploads come before
    # `cutoff`, for the purge below.
    filler.write_bytes(bytes(1 << 20))
    rejected = None
    cutoff = None
    for index in range(MAX_UPLOADS):
        if index == 4:
            time.sleep(0.01)
            cutoff = time.time()
            time.sleep(0.01)
        data = random_bytes(UPLOAD_SIZE, seed=index)
        used_before = tenant.used_bytes()
        response = user.upload(data)
        if response.status_code != 201:
            rejected = response
            break
        stored[response.json()["id"]] = data
    assert rejected is not None, f"no 507 after {MAX_UPLOADS} uploads"
    assert_insufficient_storage(rejected)
    assert len(stored) >= 6
    assert tenant.used_bytes() == used_before
    assert tenant.view()["blob_count"] == len(stored)
    assert tmp_files(server, cid) == []
    assert blob_files(server, cid) == sorted(stored)

    # Reads go on, and so do small database writes, because the reserve
    # keeps room for them.
    assert server.client().get("/healthz").status_code == 200
    assert_blobs_readable(user, stored)
    ids = list(stored)
    kept = ids[0]
    message = tenant.users[0].client.post_message_ok(
        group["id"], "still writable", [(kept, "a.bin")])

    # Below the reserve, writes get 507, but a purge frees space.
    fill_disk(filler, leave=MIN_FREE // 2)
    used = tenant.used_bytes()
    assert_insufficient_storage(user.upload(random_bytes(100, seed=99)))
    assert_insufficient_storage(tenant.users[0].client.post_message(
        group["id"], "below the reserve"))
    assert tenant.used_bytes() == used
    response = tenant.operator.post(f"/v1/contracts/{cid}/purge",
                                    json={"before": rfc3339(cutoff)})
    assert response.status_code == 200, response.text
    purged = [blob_id for blob_id in ids[:4] if blob_id != kept]
    assert response.json()["blobs_deleted"] == len(purged)
    assert response.json()["bytes_freed"] == len(purged) * UPLOAD_SIZE
    for blob_id in purged:
        del stored[blob_id]
    assert tenant.used_bytes() == used - len(purged) * UPLOAD_SIZE
    assert blob_files(server, cid) == sorted(stored)
    assert_blobs_readable(user, stored)

    # On a completely full disk, every write gets 507 and changes nothing,
    # and reads still work.
    fill_disk(filler)
    used = tenant.used_bytes()
    assert_insufficient_storage(user.upload(random_bytes(100, seed=98)))
    assert_insufficient_storage(user.upload(b""))
    assert_insufficient_storage(user.upload(stored[kept]))
    assert_insufficient_storage(tenant.users[0].client.post_message(
        group["id"], "disk full", [(kept, "b.bin")]))
    response = tenant.operator.post(
        f"/v1/contracts/{cid}/groups", json={"name": "g", "members": []})
    assert_insufficient_storage(response)
    assert_insufficient_storage(user.delete(f"/v1/messages/{message['id']}"))
    assert server.running
    assert tenant.used_bytes() == used
    assert tmp_files(server, cid) == []
    assert server.client().get("/healthz").status_code == 200
    assert_blobs_readable(user, stored)
    history = user.get(f"/v1/conversations/{group['id']}/messages")
    assert history.status_code == 200
    assert [m["id"] for m in history.json()["messages"]] == [message["id"]]

    # Once space is freed, uploads and messages work again.
    filler.unlink()
    data = random_bytes(UPLOAD_SIZE, seed=1000)
    blob = user.upload_ok(data)
    stored[blob["id"]] = data
    assert tenant.used_bytes() == used + UPLOAD_SIZE
    tenant.users[0].client.post_message_ok(group["id"], "disk freed",
                                           [(blob["id"], "c.bin")])
    assert_blobs_readable(user, stored)
    assert tmp_files(server, cid) == []
