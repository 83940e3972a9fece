"""Image uploads: EXIF orientation, the full-HD fit, metadata removal,
formats kept, corrupt and truncated images, and deterministic output."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat

from conftest import (Tenant, corpus_bytes, error_code, jpeg_bytes,
                      open_image, photo_image, png_bytes, random_bytes,
                      sha256_hex, tmp_files, wait_until)

ORIENTATION_TAG = 0x0112
EXIF_MARKER = b"Exif\x00\x00"
XMP_NAMESPACE = b"http://ns.adobe.com/xap/1.0/"


@pytest.fixture(scope="module")
def shared(server):
    """One contract with one user, shared by the tests of this module that
    do not count the contract's blobs."""
    return Tenant(server, users=1)


@pytest.fixture
def client(shared):
    return shared.users[0].client


def upload_image(client, data):
    """Upload, download the stored bytes, and check that the view's
    figures describe them; return (view, stored bytes, PIL image)."""
    response = client.upload(data)
    assert response.status_code == 201, response.text
    view = response.json()
    download = client.get(f"/v1/blobs/{view['id']}")
    assert download.status_code == 200
    stored = download.content
    assert sha256_hex(stored) == view["id"]
    assert len(stored) == view["size"]
    assert view["original_size"] == len(data)
    image = open_image(stored)
    assert (view["width"], view["height"]) == image.size
    return view, stored, image


def orientation(image):
    return image.getexif().get(ORIENTATION_TAG, 1)


def mean_difference(first, second):
    diff = ImageChops.difference(first, second)
    return ImageStat.Stat(diff).mean[0]


def assert_upright(stored_image, original_bytes):
    """Compare the stored pixels with the original as PIL orients it: the
    identity must match far better than a flip or a half turn."""
    reference = ImageOps.exif_transpose(open_image(original_bytes))
    size = (80, max(1, round(80 * stored_image.height / stored_image.width)))
    stored = stored_image.convert("L").resize(size)
    upright = reference.convert("L").resize(size)
    same = mean_difference(stored, upright)
    others = [mean_difference(stored, upright.transpose(t)) for t in (
        Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM,
        Image.Transpose.ROTATE_180)]
    assert same < 0.6 * min(others), (same, others)


def png_bit_depth(data):
    # IHDR is the first chunk: signature (8), length (4), type (4), width
    # (4), height (4), then the bit depth byte.
    assert data[12:16] == b"IHDR"
    return data[24]


@pytest.mark.parametrize("number", range(1, 9))
def test_image_exif_landscape(client, number):
    original = corpus_bytes(f"exif_landscape_{number}.jpg")
    view, stored, image = upload_image(client, original)
    assert view["media_type"] == "image/jpeg"
    assert image.format == "JPEG"
    assert image.size == (600, 450)
    assert orientation(image) == 1
    assert_upright(image, original)


@pytest.mark.parametrize("number", [1, 3, 4, 7])
def test_image_exif_portrait(client, number):
    original = corpus_bytes(f"exif_portrait_{number}.jpg")
    _view, _stored, image = upload_image(client, original)
    assert image.size == (450, 600)
    assert orientation(image) == 1
    assert_upright(image, original)


def test_image_exif_rotate_then_fit(client):
    original = corpus_bytes("exif_portrait_6_full_1800x1200.jpg")
    view, _stored, image = upload_image(client, original)
    assert (view["width"], view["height"]) == (1080, 1620)
    assert image.size == (1080, 1620)
    assert orientation(image) == 1
    assert_upright(image, original)


@pytest.mark.parametrize("name,size", [
    ("png_exif_orientation6.png", (100, 200)),
    ("png_exif_orientation5.png", (100, 200)),
    ("exif_orientation8_2x1.jpg", (1, 2)),
])
def test_image_exif_small(client, name, size):
    _view, _stored, image = upload_image(client,
                                         corpus_bytes(name))
    assert image.size == size
    assert orientation(image) == 1


@pytest.mark.parametrize("name", [
    "exif_landscape_6.jpg", "exif_gps_wrong_types.jpg",
    "exactly_1920x1080.jpeg", "exif_landscape_1.jpg", "ycck_pil_sample.jpg",
])
def test_image_metadata_removed(client, name):
    _view, stored, image = upload_image(client,
                                        corpus_bytes(name))
    assert EXIF_MARKER not in stored
    assert XMP_NAMESPACE not in stored
    assert "exif" not in image.info
    assert len(image.getexif()) == 0


def test_image_png_exif_removed(client):
    _view, stored, image = upload_image(
        client, corpus_bytes("png_exif_orientation6.png"))
    assert b"eXIf" not in stored
    assert "exif" not in image.info


def test_image_large_photo_rescaled(client):
    original = jpeg_bytes(photo_image(4000, 3000, seed=3))
    view, _stored, image = upload_image(client, original)
    assert view["media_type"] == "image/jpeg"
    assert image.format == "JPEG"
    assert image.size == (1440, 1080)
    assert view["size"] < len(original)
    assert_upright(image, original)


@pytest.mark.parametrize("width,height,expected", [
    (3000, 4000, (1080, 1440)),
    (4000, 1000, (1920, 480)),
    (1000, 4000, (480, 1920)),
    (2500, 1080, (1920, 829)),
])
def test_image_fit_rule(client, width, height, expected):
    original = jpeg_bytes(photo_image(width, height, seed=width, noise=4))
    _view, _stored, image = upload_image(client, original)
    assert abs(image.size[0] - expected[0]) <= 1, image.size
    assert abs(image.size[1] - expected[1]) <= 1, image.size


@pytest.mark.parametrize("name,size", [
    ("jpeg_1x1.jpg", (1, 1)),
    ("exactly_1920x1080.jpeg", (1920, 1080)),
    ("png_940x2.png", (940, 2)),
    ("jpeg_15x15_partial_mcu.jpg", (15, 15)),
])
def test_image_never_enlarged(client, name, size):
    _view, _stored, image = upload_image(client,
                                         corpus_bytes(name))
    assert image.size == size


def test_image_fitting_jpeg_not_reencoded(client):
    original = jpeg_bytes(photo_image(800, 600, seed=4))
    _view, _stored, image = upload_image(client, original)
    assert image.tobytes() == open_image(original).tobytes()


def test_image_png_screenshot_alpha(client):
    screenshot = photo_image(2560, 1440, seed=5, noise=0).convert("RGBA")
    alpha = Image.new("L", screenshot.size, 255)
    alpha.paste(0, (0, 0, 2560, 200))
    alpha.paste(128, (0, 200, 2560, 400))
    screenshot.putalpha(alpha)
    view, _stored, image = upload_image(client,
                                        png_bytes(screenshot))
    assert view["media_type"] == "image/png"
    assert image.format == "PNG"
    assert image.size == (1920, 1080)
    assert image.mode in ("RGBA", "LA") or "transparency" in image.info
    stored_alpha = image.convert("RGBA").getchannel("A")
    assert stored_alpha.getpixel((960, 50)) == 0
    assert abs(stored_alpha.getpixel((960, 225)) - 128) <= 2
    assert stored_alpha.getpixel((960, 900)) == 255


def test_image_png_alpha_corpus(client):
    _view, _stored, image = upload_image(
        client, corpus_bytes("rgba_2048x1536_idot.png"))
    assert image.format == "PNG"
    assert abs(image.size[0] - 1440) <= 1
    assert abs(image.size[1] - 1080) <= 1
    assert image.mode in ("RGBA", "LA") or "transparency" in image.info


def test_image_png_transparent_kept(client):
    _view, _stored, image = upload_image(
        client, corpus_bytes("fully_transparent_300x300.png"))
    assert image.size == (300, 300)
    alpha = image.convert("RGBA").getchannel("A")
    assert alpha.getextrema() == (0, 0)


def test_image_png_16bit_to_8bit(client):
    original = corpus_bytes("rgb16_flag_900x600.png")
    assert png_bit_depth(original) == 16
    _view, stored, image = upload_image(client, original)
    assert png_bit_depth(stored) == 8
    assert image.size == (900, 600)
    top = image.convert("RGB").getpixel((450, 50))
    assert top[0] > 150
    assert top[1] < 80
    assert top[2] < 80


def test_image_cmyk_becomes_rgb(client):
    _view, _stored, image = upload_image(
        client, corpus_bytes("ycck_pil_sample.jpg"))
    assert image.mode == "RGB"
    reference = open_image(corpus_bytes("ycck_reference_rgb.jpg"))
    assert mean_difference(image.convert("L"), reference.convert("L")) < 20


@pytest.mark.parametrize("name", [
    "corrupt_header_1024.jpg", "fuzz_oss_36829.jpeg", "missing_sof.jpg",
    "width_zero.jpg", "fuzz_derive_huffman_overflow.jpg",
    "png_ihdr_missing.png", "broken_zlib_stream.png", "png_width_zero.png",
    "huge_iCCP_length.png",
])
def test_image_corrupt_415(server, shared, client, name):
    before = shared.view()
    data = corpus_bytes(name)
    response = client.upload(data)
    assert response.status_code == 415
    assert error_code(response) == "unsupported_image"
    assert shared.view()["used_bytes"] == before["used_bytes"]
    assert shared.view()["blob_count"] == before["blob_count"]
    assert wait_until(lambda: not tmp_files(server, shared.cid), 5)
    assert client.get(f"/v1/blobs/{sha256_hex(data)}").status_code == 404


@pytest.mark.parametrize("name", [
    "truncated_baseline_2725x2225.jpg", "truncated_progressive.jpg",
    "truncated_progressive_5_of_10_scans.jpeg", "truncated_png_640x480.png",
])
def test_image_truncated_415(server, shared, client, name):
    before = shared.view()
    response = client.upload(corpus_bytes(name))
    assert response.status_code == 415
    assert error_code(response) == "unsupported_image"
    assert shared.view()["used_bytes"] == before["used_bytes"]
    assert shared.view()["blob_count"] == before["blob_count"]
    assert wait_until(lambda: not tmp_files(server, shared.cid), 5)


@pytest.mark.parametrize("make", [
    lambda: jpeg_bytes(photo_image(3000, 2000, seed=8))[:400_000],
    lambda: jpeg_bytes(photo_image(800, 600, seed=9))[:30_000],
    lambda: png_bytes(photo_image(2400, 1600, seed=10))[:200_000],
    lambda: b"\xff\xd8\xff" + random_bytes(20_000, seed=4),
    lambda: b"\x89PNG\r\n\x1a\n" + random_bytes(20_000, seed=5),
], ids=["jpeg-large-cut", "jpeg-small-cut", "png-cut", "jpeg-garbage",
        "png-garbage"])
def test_image_generated_corrupt_415(shared, client, make):
    before = shared.view()
    response = client.upload(make())
    assert response.status_code == 415
    assert error_code(response) == "unsupported_image"
    assert shared.view()["used_bytes"] == before["used_bytes"]
    assert shared.view()["blob_count"] == before["blob_count"]


@pytest.mark.parametrize("name", [
    "bomb_png_16384x16384_32KB.png", "bomb_jpeg_65535x65535_186B.jpg",
])
def test_image_pixel_bomb_415(shared, client, name):
    before = shared.view()
    response = client.upload(corpus_bytes(name))
    assert response.status_code == 415
    assert error_code(response) == "unsupported_image"
    assert shared.view()["used_bytes"] == before["used_bytes"]


def test_image_max_pixels_config(blobd):
    server = blobd(limits={"max_image_pixels": 1_000_000})
    client = Tenant(server, users=1).users[0].client
    fits = client.upload(jpeg_bytes(photo_image(1000, 1000, seed=1)))
    assert fits.status_code == 201
    over = client.upload(jpeg_bytes(photo_image(1001, 1000, seed=2)))
    assert over.status_code == 415
    assert error_code(over) == "unsupported_image"


def test_image_same_upload_same_bytes(server, shared):
    first = shared
    second = Tenant(server, users=1)
    for original in (jpeg_bytes(photo_image(3200, 2400, seed=13)),
                     corpus_bytes("exif_portrait_6_full_1800x1200.jpg"),
                     corpus_bytes("widescreen_2000x1000_corners.png")):
        _one, stored_one, _image = upload_image(first.users[0].client,
                                                original)
        _two, stored_two, _image = upload_image(second.users[0].client,
                                                original)
        assert stored_one == stored_two
        again = first.users[0].client.upload(original)
        assert again.json()["id"] == sha256_hex(stored_one)


def test_image_parallel_same_photo(server):
    tenant = Tenant(server, users=1)
    token = tenant.users[0].token
    photo = jpeg_bytes(photo_image(3000, 2000, seed=21))

    def upload(_index):
        client = server.client(token)
        try:
            return client.upload(photo)
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(upload, range(6)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 503}, statuses
    accepted = [r.json() for r in responses if r.status_code == 201]
    assert accepted
    assert all(view == accepted[0] for view in accepted)
    assert tenant.view()["blob_count"] == 1
    assert tenant.view()["used_bytes"] == accepted[0]["size"]


def test_image_png_duplicate_copies(server):
    tenant = Tenant(server, users=1)
    client = tenant.users[0].client
    one = client.upload_ok(corpus_bytes("png_exif_orientation3_copyA.png"))
    two = client.upload_ok(corpus_bytes("png_exif_orientation3_copyB.png"))
    assert one["id"] == two["id"]
    assert tenant.view()["blob_count"] == 1
    assert tenant.view()["used_bytes"] == one["size"]


def test_image_view_figures_match(client):
    for name in ("widescreen_2000x1000_corners.png", "gray16_trns.png",
                 "progressive_peacock.jpg", "restart_markers.jpg",
                 "pngsuite_basi3p08.png"):
        view, _stored, image = upload_image(client, corpus_bytes(name))
        assert view["media_type"] == f"image/{image.format.lower()}", name
        assert max(image.size) <= 1920, name
        assert min(image.size) <= 1080, name

