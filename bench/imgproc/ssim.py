#!/usr/bin/python3
"""Score imgproc's rescaling against a full decode + Lanczos-3 reference.

For each input image the reference is made with PIL: full decode, EXIF
orientation applied, then Image.resize(..., Image.LANCZOS) to the size that
the full-HD fit rule gives. imgproc's output (through imgproc_cli) and
vipsthumbnail's output (--size 1920x1080, or 1080x1920 for a
portrait image, one thread, Q=90) are scored against
it with SSIM on luma (BT.601), Gaussian window sigma 1.5, 11 taps, the
constants of Wang et al. 2004. When vipsthumbnail rounds a side
differently, its output is resized to the reference size with PIL's
bicubic filter first, and the row notes it.

Usage: ssim.py --cli PATH/imgproc_cli [--work DIR] [--zone-plate] IMAGE...
Needs /usr/bin/python3 with PIL and numpy (Debian python3-pil and
python3-numpy).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageOps

# The corpus contains a real 99.6 Mpx photo, so PIL's bomb warning is noise.
Image.MAX_IMAGE_PIXELS = None


def fit(width, height, long_side=1920, short_side=1080):
    """Stored size under the full-HD fit rule (never enlarged)."""
    scale = min(1.0, long_side / max(width, height),
                short_side / min(width, height))
    return (max(1, int(width * scale + 0.5)),
            max(1, int(height * scale + 0.5)))


def flatten(image):
    """RGB of an image, composited over white when it has alpha, so that
    colour hidden under transparent pixels does not count."""
    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def luma(image):
    rgb = np.asarray(flatten(image), dtype=np.float64)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def gaussian_blur(plane, sigma=1.5, radius=5):
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-(taps ** 2) / (2 * sigma ** 2))
    kernel /= kernel.sum()
    # Valid-mode separable filter: the result shrinks by 2 * radius.
    rows = sum(k * plane[:, i:plane.shape[1] - 2 * radius + i]
               for i, k in enumerate(kernel))
    return sum(k * rows[i:rows.shape[0] - 2 * radius + i, :]
               for i, k in enumerate(kernel))


def ssim(a, b):
    """Mean SSIM of two equally sized images, on luma."""
    x, y = luma(a), luma(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = gaussian_blur(x), gaussian_blur(y)
    var_x = gaussian_blur(x * x) - mu_x ** 2
    var_y = gaussian_blur(y * y) - mu_y ** 2
    cov = gaussian_blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2)
    return float((num / den).mean())


def reference(path):
    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image)
        if upright.mode not in ("RGB", "RGBA"):
            upright = upright.convert("RGBA")
    size = fit(*upright.size)
    return upright.resize(size, Image.LANCZOS)


def run_imgproc(cli, path, work):
    out = os.path.join(work, "imgproc_" + os.path.basename(path))
    subprocess.run([cli, path, out], check=True, stdout=subprocess.DEVNULL)
    return Image.open(out)


def run_vips(path, work, portrait):
    base, ext = os.path.splitext(os.path.basename(path))
    out = os.path.join(work, "vips_" + base + ext)
    target = out + ("[Q=90]" if ext.lower() in (".jpg", ".jpeg") else "")
    box = "1080x1920" if portrait else "1920x1080"
    env = dict(os.environ, VIPS_CONCURRENCY="1")
    subprocess.run(["vipsthumbnail", path, "--size", box, "-o", target],
                   check=True, env=env)
    return Image.open(out)


def zone_plate(work, width=4000, height=3000):
    """A circular zone plate (frequency rising to Nyquist at the corners),
    written as a PNG and as a quality-95 JPEG."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    x -= width / 2
    y -= height / 2
    k = np.pi / (2 * np.hypot(width / 2, height / 2))
    plane = 127.5 + 127.5 * np.cos(k * (x * x + y * y))
    image = Image.fromarray(plane.round().astype(np.uint8), "L")
    paths = [os.path.join(work, "zone_plate.png"),
             os.path.join(work, "zone_plate.jpg")]
    image.save(paths[0])
    image.convert("RGB").save(paths[1], quality=95)
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cli", required=True, help="imgproc_cli binary")
    parser.add_argument("--work", help="scratch folder (default: temporary)")
    parser.add_argument("--zone-plate", action="store_true",
                        help="also score a generated 12 MP zone plate")
    parser.add_argument("images", nargs="*")
    args = parser.parse_args()

    work = args.work or tempfile.mkdtemp(prefix="imgproc-ssim-")
    images = list(args.images)
    if args.zone_plate:
        images += zone_plate(work)
    print("| image | input | stored | SSIM imgproc | SSIM vipsthumbnail |")
    print("| --- | --- | --- | --- | --- |")
    for path in images:
        ref = reference(path)
        ours = run_imgproc(args.cli, path, work)
        vips = run_vips(path, work, ref.size[1] > ref.size[0])
        note = ""
        if ours.size != ref.size:
            print("%s: imgproc stored %s, reference %s" %
                  (path, ours.size, ref.size), file=sys.stderr)
            sys.exit(1)
        if vips.size != ref.size:
            note = " (resized from %dx%d)" % vips.size
            vips = flatten(vips).resize(ref.size, Image.BICUBIC)
        with Image.open(path) as image:
            input_size = "%dx%d" % image.size
        print("| %s | %s | %dx%d | %.4f | %.4f%s |" %
              (os.path.basename(path), input_size, ref.size[0], ref.size[1],
               ssim(ours, ref), ssim(vips, ref), note))


if __name__ == "__main__":
    main()
