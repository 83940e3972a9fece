"""Overload: image rescaling runs on a bounded pool (here one worker and a
queue of one). In a flood of concurrent large JPEG uploads, those that do
not fit get 503 overloaded with Retry-After, and none gets another 5xx.
Every 201 is a correct blob, a 503 stores nothing, other uploads are
served meanwhile, and the server's memory stays bounded.
"""

import os
import threading

import pytest

from conftest import (Client, Tenant, error_code, jpeg_bytes, minimal_pdf,
                      photo_image, sha256_hex)

LIMITS = {"image_workers": 1, "image_queue": 1}
FLOOD = 12
MAX_ROUNDS = 5
SANITIZED = os.environ.get("BLOBD_SANITIZED") == "1"
# Peak resident memory allowed after the flood. One worker at a time
# decodes a 24-megapixel JPEG at half size (libjpeg-turbo's DCT scaling):
# blobd peaked at 53 MiB, and at 212 MiB under ASan, whose shadow memory
# and quarantine add a large constant.
MAX_RSS = (1024 if SANITIZED else 256) << 20


@pytest.fixture(scope="module")
def photos():
    image = photo_image(6000, 4000, seed=11, noise=0)
    return [jpeg_bytes(image, quality=85),
            jpeg_bytes(image.transpose(2), quality=85)]   # rotated 90


def flood(server, token, photos):
    """Upload FLOOD photos at once and return the responses."""
    barrier = threading.Barrier(FLOOD)
    results = [None] * FLOOD

    def upload(index):
        client = Client(server, token)
        try:
            barrier.wait()
            results[index] = client.upload(photos[index % len(photos)])
        finally:
            client.close()

    threads = [threading.Thread(target=upload, args=(index,))
               for index in range(FLOOD)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive(), "an upload hangs"
    return results


def test_image_flood_503(blobd, photos):
    server = blobd(limits=LIMITS)
    tenant = Tenant(server, users=2)
    user, other = tenant.users
    stored = {}
    overloaded = 0

    for round_index in range(MAX_ROUNDS):
        pdf_result = {}
        pdf_thread = threading.Thread(target=lambda: pdf_result.update(
            response=other.client.upload(minimal_pdf(f"r{round_index}"))))
        pdf_thread.start()
        responses = flood(server, user.token, photos)
        pdf_thread.join(60)
        # Documents do not wait for the image pool.
        assert pdf_result["response"].status_code == 201

        for response in responses:
            assert response.status_code in (201, 503), response.text
            if response.status_code == 503:
                overloaded += 1
                assert error_code(response) == "overloaded"
                assert int(response.headers["Retry-After"]) > 0
            else:
                view = response.json()
                assert view["media_type"] == "image/jpeg"
                long_side = max(view["width"], view["height"])
                short_side = min(view["width"], view["height"])
                assert long_side <= 1920
                assert short_side == 1080
                stored[view["id"]] = view["size"]
        if overloaded:
            break
    assert overloaded > 0, f"no 503 in {MAX_ROUNDS} floods of {FLOOD}"
    assert stored, "no upload of the flood was stored"

    # Every 201 is a correct blob, and a 503 stored nothing.
    for blob_id, size in stored.items():
        response = user.client.get(f"/v1/blobs/{blob_id}")
        assert response.status_code == 200
        assert sha256_hex(response.content) == blob_id
        assert len(response.content) == size
    contract = tenant.view()
    pdf_bytes = contract["used_bytes"] - sum(stored.values())
    assert contract["blob_count"] - len(stored) == round_index + 1
    assert pdf_bytes > 0
    assert os.listdir(server.data_dir / "contracts" / tenant.cid / "tmp") \
        == []

    metrics = server.operator().get("/metrics").text
    assert f"blobd_overload_rejections_total {overloaded}" in metrics
    print(f"peak RSS {server.vm_hwm_bytes() >> 20} MiB")
    assert server.vm_hwm_bytes() < MAX_RSS
    # Once the flood is over, the same upload succeeds.
    assert user.client.upload(photos[0]).status_code == 201
