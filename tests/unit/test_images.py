"""Decoding untrusted uploads and the on-disk image store."""

from __future__ import annotations

import io
import math
import os
import stat
import struct
import time
import zlib
from datetime import timedelta
from pathlib import Path

import pillow_heif
import pytest
from PIL import AvifImagePlugin, Image, ImageFile, features
from pillow_heif.as_plugin import HeifImageFile
from pillow_heif.heif import BaseImage

from storage.images import MIN_IMAGE_SIDE, ImageRejected, ImageStore, decode_image, fit_within

pytestmark = pytest.mark.unit

LIMITS = {"max_bytes": 20 * 1024 * 1024, "max_pixels": 40_000_000}
JOB = "0123456789abcdef0123456789abcdef"
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    if fmt == "HEIF":  # pillow-heif's own writer: the test leaves Pillow's registry alone
        pillow_heif.from_pillow(image).save(buf, **params)
    else:
        image.save(buf, format=fmt, **params)
    return buf.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header for a huge RGB image, followed by a sliver of pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _declared_orientation(data: bytes, fmt: str) -> int:
    """The EXIF orientation a file carries, read without our decoder."""
    if fmt == "HEIF":
        exif = Image.Exif()
        exif.load(pillow_heif.open_heif(io.BytesIO(data)).info["exif"])
    else:
        exif = Image.open(io.BytesIO(data)).getexif()
    return int(exif.get(0x0112, 1))


def _claiming(data: bytes, width: int, height: int) -> bytes:
    """A HEIF or AVIF file whose (single) ispe box declares another image size."""
    assert data.count(b"ispe") == 1
    at = data.index(b"ispe") + 8  # after the box type and its version and flags
    return data[:at] + struct.pack(">II", width, height) + data[at + 8 :]


def _reject_code(data: bytes, **limits: int) -> str:
    with pytest.raises(ImageRejected) as info:
        decode_image(data, **{**LIMITS, **limits})
    return info.value.code


def _close(pixel: object, expected: tuple[int, int, int], tol: int = 40) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= tol for a, b in zip(pixel, expected, strict=True))


@pytest.mark.parametrize("fmt", ["JPEG", "HEIF", "AVIF"])
def test_exif_orientation_is_applied_and_metadata_dropped(fmt: str, store: ImageStore) -> None:
    image = Image.new("RGB", (160, 80), RED)
    image.paste(BLUE, (80, 0, 160, 80))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    data = _encode(image, fmt, exif=exif.tobytes(), quality=95)
    assert _declared_orientation(data, fmt) == 6  # HEIF: also stored as an irot transform

    out = decode_image(data, **LIMITS)

    assert out.size == (80, 160)
    assert _close(out.getpixel((40, 20)), RED)  # the left edge is now the top
    assert _close(out.getpixel((40, 140)), BLUE)
    assert (out.mode, out.info, len(out.getexif())) == ("RGB", {}, 0)
    with Image.open(store.save_input(JOB, out)) as stored:
        assert ("exif" in stored.info, len(stored.getexif()), stored.size) == (False, 0, (80, 160))


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        # PDF is not an image format at all, so it is not_image (not unsupported_format).
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "not_image"),
        (b"hello, this is a text file and not a picture\n" * 3, "not_image"),
        (_encode(Image.new("RGB", (8, 8), RED), "GIF"), "unsupported_format"),
        (_encode(Image.new("RGB", (8, 8), RED), "BMP"), "unsupported_format"),
        (_encode(Image.new("RGB", (80, 80), RED), "TIFF"), "unsupported_format"),
        (b"\x89PNG\r\n\x1a\n" + b"\xff" * 40, "corrupt"),  # PNG signature, garbage header
        (b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\xff" * 40, "corrupt"),
        (b"\0\0\0\x18ftypavif\0\0\0\0avifmif1" + b"\xff" * 40, "corrupt"),
    ],
    ids=["empty", "pdf", "text", "gif", "bmp", "tiff", "png-bad-header", "heic-bad", "avif-bad"],
)
def test_rejections(data: bytes, code: str) -> None:
    assert _reject_code(data) == code


def test_file_over_byte_limit_is_rejected_before_decoding() -> None:
    data = _encode(Image.new("RGB", (64, 64), RED), "PNG")

    assert _reject_code(data, max_bytes=len(data) - 1) == "too_big_file"
    assert decode_image(data, max_bytes=len(data), max_pixels=64 * 64).size == (64, 64)


@pytest.mark.parametrize(
    ("side", "max_pixels"),
    [
        (14_000, 40_000_000),  # over our limit, and over twice Pillow's: DecompressionBombError
        (6_000, 1_000_000),  # over our limit only: the header check
        # Between Pillow's limit and twice it: its DecompressionBombWarning must stop decoding.
        (math.isqrt(int((Image.MAX_IMAGE_PIXELS or 0) * 1.5)), 10**12),
    ],
    ids=["bomb-error", "our-limit", "bomb-warning"],
)
def test_too_many_pixels_rejected_from_header_without_decoding(
    side: int, max_pixels: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[object] = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda im: loads.append(im))
    limit_before = Image.MAX_IMAGE_PIXELS

    started = time.perf_counter()
    code = _reject_code(_png_claiming(side, side), max_pixels=max_pixels)

    assert code == "too_many_pixels"
    assert loads == []
    assert time.perf_counter() - started < 1.0
    assert limit_before == Image.MAX_IMAGE_PIXELS  # no global Pillow state touched


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file_is_corrupt(fmt: str) -> None:
    data = _encode(Image.frombytes("RGB", (128, 128), os.urandom(128 * 128 * 3)), fmt)

    assert _reject_code(data[: len(data) // 2]) == "corrupt"


@pytest.mark.parametrize("fmt", ["WEBP", "PNG", "AVIF"])
def test_animated_image_gives_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (64, 64), c) for c in (RED, GREEN, BLUE)]
    data = _encode(frames[0], fmt, save_all=True, append_images=frames[1:], lossless=True)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3

    out = decode_image(data, **LIMITS)

    assert _close(out.getpixel((8, 8)), RED, tol=2)  # AVIF's lossless is off by one in blue
    assert getattr(out, "n_frames", 1) == 1


@pytest.mark.parametrize(
    ("image", "pixels"),
    [
        (Image.new("RGBA", (64, 64), (255, 0, 0, 255)), RED),
        (Image.new("RGBA", (64, 64), (255, 0, 0, 0)), WHITE),  # transparent: on white
        (Image.new("L", (64, 64), 128), (128, 128, 128)),
        (Image.new("RGB", (64, 64), BLUE).convert("P"), BLUE),
    ],
    ids=["rgba-opaque", "rgba-transparent", "grey", "palette"],
)
def test_other_modes_become_rgb(image: Image.Image, pixels: tuple[int, int, int]) -> None:
    out = decode_image(_encode(image, "PNG"), **LIMITS)

    assert (out.mode, out.getpixel((5, 5))) == ("RGB", pixels)


def test_this_pillow_decodes_avif() -> None:
    assert features.check("avif"), "AVIF uploads need a Pillow built with AVIF (wheels >= 11.3)"


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heic_and_avif_decode_to_rgb_of_their_size(fmt: str) -> None:
    image = Image.linear_gradient("L").resize((300, 200)).convert("RGB")
    image.paste(GREEN, (100, 50, 200, 150))

    out = decode_image(_encode(image, fmt, quality=90), **LIMITS)

    assert (out.mode, out.size, out.info) == ("RGB", (300, 200), {})
    assert _close(out.getpixel((150, 100)), GREEN)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_files_branded_only_mif1_decode_too(fmt: str) -> None:
    """Some phones write "mif1" as the major brand, which both plugins claim; each must end up
    with the decoder that has its codec."""
    data = _encode(Image.new("RGB", (96, 64), BLUE), fmt, quality=90)
    assert data[8:12] == {"HEIF": b"heic", "AVIF": b"avif"}[fmt]
    data = data[:8] + b"mif1" + data[12:]

    assert _close(decode_image(data, **LIMITS).getpixel((48, 32)), BLUE)


def test_multi_image_heic_gives_its_primary_image_and_decodes_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    heif = pillow_heif.HeifFile()
    for size, colour in [((200, 100), RED), ((96, 64), GREEN), ((64, 300), BLUE)]:
        heif.add_from_pillow(Image.new("RGB", size, colour))
    buf = io.BytesIO()
    heif.save(buf, quality=90, primary_index=1)
    decoded: dict[int, tuple[int, int]] = {}  # the images pillow-heif was asked to decode
    load = BaseImage.load
    monkeypatch.setattr(BaseImage, "load", lambda im: (decoded.update({id(im): im.size}), load(im)))

    out = decode_image(buf.getvalue(), **LIMITS)

    assert out.size == (96, 64) and _close(out.getpixel((48, 32)), GREEN)
    assert list(decoded.values()) == [(96, 64)]


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
@pytest.mark.parametrize(
    ("side", "max_pixels"),
    [(15_000, 40_000_000), (7_000, 40_000_000)],  # over twice Pillow's limit; over ours only
    ids=["bomb-error", "our-limit"],
)
def test_heic_or_avif_header_claiming_a_huge_image_is_refused_without_decoding(
    fmt: str, side: int, max_pixels: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _claiming(_encode(Image.new("RGB", (64, 64), RED), fmt, quality=50), side, side)
    loads: list[object] = []
    monkeypatch.setattr(HeifImageFile, "load", lambda im: loads.append(im))
    monkeypatch.setattr(AvifImagePlugin.AvifImageFile, "load", lambda im: loads.append(im))

    assert _reject_code(data, max_pixels=max_pixels) == "too_many_pixels"
    assert loads == []


def test_heic_whose_coded_image_is_larger_than_its_header_says_is_refused() -> None:
    """libheif refuses to decode past the declared size, so the header check holds for HEIC.
    (AVIF through Pillow does not: see the note on _check_pixels.)"""
    data = _claiming(_encode(Image.new("RGB", (1024, 1024), RED), "HEIF", quality=50), 100, 100)

    assert _reject_code(data) == "corrupt"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "HEIF", "AVIF"])
def test_an_image_under_the_minimum_side_is_too_small(fmt: str) -> None:
    data = _encode(Image.new("RGB", (40, 300), RED), fmt)

    assert MIN_IMAGE_SIDE == 64
    assert _reject_code(data) == "too_small"
    assert decode_image(_encode(Image.new("RGB", (64, 300), RED), fmt), **LIMITS).size == (64, 300)


def test_the_minimum_side_is_checked_after_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    wide = _encode(Image.new("RGB", (300, 40), RED), "JPEG", exif=exif.tobytes())

    with pytest.raises(ImageRejected, match=r"too_small: 40x300 < 64"):
        decode_image(wide, **LIMITS)


def test_fit_within_keeps_aspect_and_leaves_small_images_alone() -> None:
    assert fit_within(small := Image.new("RGB", (100, 50)), 100) is small
    assert fit_within(Image.new("RGB", (3000, 1000)), 2048).size == (2048, 683)
    assert fit_within(Image.new("RGB", (10, 4000)), 2048).size == (5, 2048)


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images", result_ttl=timedelta(hours=24))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_input_round_trip_downsizes_and_is_owner_only(store: ImageStore) -> None:
    path = store.save_input(JOB, Image.new("RGB", (4096, 1024), GREEN))
    loaded = store.load_input(JOB)

    assert path == store.root / "inputs" / f"{JOB}.png"
    assert loaded.size == (2048, 512)
    assert loaded.getpixel((100, 100)) == GREEN
    assert (_mode(path), _mode(path.parent)) == (0o600, 0o700)
    store.delete_input(JOB)
    store.delete_input(JOB)  # deleting twice is fine
    with pytest.raises(FileNotFoundError):
        store.load_input(JOB)


def test_result_is_jpeg_without_exif(store: ImageStore) -> None:
    image = Image.new("RGB", (32, 32), BLUE)
    image.info["exif"] = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00"

    path = store.save_result(JOB, image)

    assert path == store.result_path(JOB) == store.root / "results" / f"{JOB}.jpg"
    with Image.open(path) as saved:
        assert (saved.format, "exif" in saved.info, _mode(path)) == ("JPEG", False, 0o600)
    store.delete_result(JOB)
    assert not path.exists()


def test_results_are_synced_to_disk_but_short_lived_inputs_are_not(
    store: ImageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    store.save_input(JOB, Image.new("RGB", (8, 8), RED))
    assert synced == []
    store.save_result(JOB, Image.new("RGB", (8, 8), RED))
    assert len(synced) == 1


def test_writes_leave_no_temp_files_even_when_they_fail(
    store: ImageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save_result(JOB, Image.new("RGB", (8, 8), RED))
    store.save_input(JOB, Image.new("RGB", (8, 8), RED))

    def broken_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        fp.write(b"half an image")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        store.save_result(JOB, Image.new("RGB", (8, 8), BLUE))
    monkeypatch.undo()

    assert os.listdir(store.root / "results") == [f"{JOB}.jpg"]
    assert os.listdir(store.root / "inputs") == [f"{JOB}.png"]
    with Image.open(store.result_path(JOB)) as kept:  # the old result survives intact
        assert _close(kept.getpixel((4, 4)), RED)


def test_purge_removes_only_expired_results(store: ImageStore) -> None:
    old, fresh, now = "a" * 32, "b" * 32, time.time()
    assert store.purge_expired_results() == 0  # nothing written yet: no directory either
    for job in (old, fresh):
        store.save_result(job, Image.new("RGB", (4, 4)))
    stale_tmp = store.root / "results" / f".{old}.jpg.xyz.tmp"
    stale_tmp.write_bytes(b"")
    for path in (store.result_path(old), stale_tmp):
        os.utime(path, (now - 25 * 3600, now - 25 * 3600))
    store.save_input(old, Image.new("RGB", (4, 4)))

    assert store.purge_expired_results(now=now) == 1
    assert not store.result_path(old).exists()
    assert not stale_tmp.exists()
    assert store.result_path(fresh).exists()
    assert store.input_path(old).exists()  # inputs have their own purge
    assert store.purge_expired_results(now=now + 24 * 3600 + 1) == 1
    assert store.purge_inputs_older_than(timedelta(0), now=now + 1) == 1


@pytest.mark.parametrize(
    "job_id",
    ["../../etc/passwd", "0123456789ABCDEF0123456789ABCDEF", "abc", JOB + "\n", JOB + "0", ""],
)
def test_invalid_job_ids_never_become_paths(store: ImageStore, job_id: str) -> None:
    with pytest.raises(ValueError, match="invalid job id"):
        store.save_input(job_id, Image.new("RGB", (4, 4)))
    for method in (store.result_path, store.load_input, store.delete_result, store.delete_input):
        with pytest.raises(ValueError, match="invalid job id"):
            method(job_id)
    assert not (store.root).exists()
