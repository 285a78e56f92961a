"""Safe decoding of untrusted uploads, and the on-disk store of job inputs and results."""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from storage.provenance import Provenance

# AVIF (Pillow's own plugin) before HEIF (pillow-heif): both claim files branded "mif1", and
# the AVIF plugin declines a HEVC-coded one, while pillow-heif here has no AV1 decoder.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "AVIF", "HEIF")
REJECT_CODES = frozenset(
    {
        "empty",
        "too_big_file",
        "not_image",
        "unsupported_format",
        "too_many_pixels",
        "too_small",
        "corrupt",
    }
)
MIN_IMAGE_SIDE = 64  # below this on either side, styling has nothing to work with
DEFAULT_MAX_INPUT_SIDE = 2048
RESULT_JPEG_QUALITY = 92
_JOB_ID = re.compile(r"[0-9a-f]{32}")


class ImageRejected(Exception):
    """An upload we will not process; `code` is one of REJECT_CODES."""

    def __init__(self, code: str, detail: str = "") -> None:
        if code not in REJECT_CODES:
            raise ValueError(f"unknown rejection code {code!r}")
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


def decode_image(
    data: bytes, *, max_bytes: int, max_pixels: int, min_side: int = MIN_IMAGE_SIDE
) -> Image.Image:
    """Decode an upload to a plain RGB image (first or primary frame, upright, no metadata)
    or reject it."""
    if not data:
        raise ImageRejected("empty")
    if len(data) > max_bytes:
        raise ImageRejected("too_big_file", f"{len(data)} bytes > {max_bytes}")
    # Scoped here, not at import: Pillow's bomb warning must stop decoding, not just log.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with _open(data) as im:
            _check_pixels(im.size, max_pixels)
            _load(im)
            _check_pixels(im.size, max_pixels)  # pillow-heif takes the size it decoded
            try:
                out = _normalise(im)
            except (ValueError, OSError) as exc:  # a pixel mode Pillow cannot turn into RGB
                raise ImageRejected("unsupported_format", repr(exc)) from exc
    if min(out.size) < min_side:
        raise ImageRejected("too_small", f"{out.width}x{out.height} < {min_side}")
    return out


@cache
def _register_heif() -> None:
    """Teach Pillow HEIC/HEIF, once: the primary image only, no thumbnails, depth or aux images."""
    register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)


def _open(data: bytes) -> Image.Image:
    """Parse only the header, restricted to the allowed formats."""
    _register_heif()
    try:
        return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("too_many_pixels", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected(_classify_unreadable(data[:16])) from exc
    except Exception as exc:  # Pillow raises many types on malformed headers
        raise ImageRejected("corrupt", repr(exc)) from exc


def _classify_unreadable(prefix: bytes) -> str:
    """Tell a broken allowed image from another image format from something else entirely."""
    Image.init()
    _register_heif()
    # Only the plugins' magic-byte checks run here; no other decoder sees the bytes.
    formats = {fmt for fmt, (_, accept) in Image.OPEN.items() if accept and accept(prefix)}
    if formats & set(ALLOWED_FORMATS):
        return "corrupt"
    return "unsupported_format" if formats else "not_image"


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    """Refuse from the size the header declares, before any pixel is decoded.

    libheif will not decode past the declared size. Pillow's AVIF decoder does not hold the AV1
    frame to it: a crafted AVIF declaring a small size can still make libavif decode up to its
    own limit (16384x16384: about 0.6 GB and a second here) before the result is cut down.
    """
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageRejected("corrupt", f"size {width}x{height}")
    if width * height > max_pixels:
        raise ImageRejected("too_many_pixels", f"{width}x{height} > {max_pixels} pixels")


def _load(im: Image.Image) -> None:
    """Decode the pixels of the current frame: the first, or a HEIF file's primary image."""
    try:
        im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("too_many_pixels", str(exc)) from exc
    except Exception as exc:  # truncated or malformed data surfaces as many exception types
        raise ImageRejected("corrupt", repr(exc)) from exc


def _normalise(im: Image.Image) -> Image.Image:
    """Upright RGB, transparency on white, in a new image that carries no info or EXIF."""
    with contextlib.suppress(Exception):  # a broken EXIF block should not cost the user their photo
        ImageOps.exif_transpose(im, in_place=True)
    if im.has_transparency_data:
        rgba = im.convert("RGBA")
        out = Image.new("RGB", rgba.size, "white")
        out.paste(rgba, mask=rgba.getchannel("A"))
    else:
        out = im.convert("RGB")  # always a new object, so no cached EXIF comes along
    out.info = {}
    return out


def fit_within(image: Image.Image, max_side: int) -> Image.Image:
    """Downsize so the long side is at most max_side, keeping aspect; smaller images pass as is."""
    if max_side < 1:
        raise ValueError("max_side must be positive")
    width, height = image.size
    if max(width, height) <= max_side:
        return image
    scale = max_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def validate_job_id(job_id: str) -> str:
    """Return job_id if it is 32 lowercase hex digits; paths are only ever built from those."""
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise ValueError(f"invalid job id {job_id!r}")
    return job_id


class ImageStore:
    """Job inputs (PNG) and results (JPEG) under one root, written atomically, owner-only.

    provenance: results carry a signed C2PA manifest (and nothing else); None: no metadata.
    """

    def __init__(
        self,
        root: Path,
        result_ttl: timedelta,
        *,
        max_input_side: int = DEFAULT_MAX_INPUT_SIDE,
        provenance: Provenance | None = None,
    ) -> None:
        self.root = Path(root)
        self.result_ttl = result_ttl
        self.max_input_side = max_input_side
        self.provenance = provenance
        self.inputs_dir = self.root / "inputs"
        self.results_dir = self.root / "results"

    def input_path(self, job_id: str) -> Path:
        return self.inputs_dir / f"{validate_job_id(job_id)}.png"

    def result_path(self, job_id: str) -> Path:
        return self.results_dir / f"{validate_job_id(job_id)}.jpg"

    def save_input(self, job_id: str, image: Image.Image) -> Path:
        """Store the (downsized) input image as PNG."""
        path = self.input_path(job_id)
        small = fit_within(image, self.max_input_side)
        # Inputs live minutes; fast compression beats small files. No fsync either: an input
        # lost to a machine crash fails its job with a refund (the worker's "input" error),
        # while an fsync costs every request a disk flush on the way to the queue.
        _atomic_write(path, lambda f: small.save(f, format="PNG", compress_level=1), durable=False)
        return path

    def load_input(self, job_id: str) -> Image.Image:
        """Read a stored input back; FileNotFoundError if there is none."""
        with Image.open(self.input_path(job_id), formats=["PNG"]) as im:
            im.load()
            return im.convert("RGB")

    def delete_input(self, job_id: str) -> None:
        self.input_path(job_id).unlink(missing_ok=True)

    def save_result(self, job_id: str, image: Image.Image) -> Path:
        """Store a styled result as JPEG without EXIF or other metadata, but for a signed C2PA
        manifest when the store has a signer (unsigned, with a warning, if signing fails)."""
        path = self.result_path(job_id)
        clean = image.convert("RGB")
        clean.info = {}
        buf = io.BytesIO()
        clean.save(buf, format="JPEG", quality=RESULT_JPEG_QUALITY, exif=b"")
        data = buf.getvalue()
        if self.provenance is not None:
            data = self.provenance.label(data, job_id)
        _atomic_write(path, lambda f: f.write(data))
        return path

    def delete_result(self, job_id: str) -> None:
        self.result_path(job_id).unlink(missing_ok=True)

    def purge_expired_results(self, now: float | None = None) -> int:
        """Delete results older than the TTL (by mtime); return how many were deleted."""
        return _purge(self.results_dir, ".jpg", self.result_ttl, now)

    def purge_inputs_older_than(self, age: timedelta, now: float | None = None) -> int:
        """Delete inputs older than `age` (left by crashed jobs); return how many were deleted."""
        return _purge(self.inputs_dir, ".png", age, now)


def _ensure_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)  # mkdir's mode is filtered by the umask


def _atomic_write(
    path: Path, write: Callable[[IO[bytes]], object], *, durable: bool = True
) -> None:
    """Write via a temp file in the same directory, so readers see the old file or the new one.

    durable: fsync the data before the rename, so it survives a machine crash too.
    """
    _ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:  # mkstemp creates it 0o600
            write(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _purge(directory: Path, suffix: str, max_age: timedelta, now: float | None) -> int:
    """Delete files older than max_age; stale temp files go too but are not counted."""
    cutoff = (time.time() if now is None else now) - max_age.total_seconds()
    if not directory.is_dir():
        return 0
    removed = 0
    for entry in os.scandir(directory):
        is_result = entry.name.endswith(suffix) and not entry.name.startswith(".")
        is_temp = entry.name.endswith(".tmp")
        if not (is_result or is_temp) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if entry.stat().st_mtime >= cutoff:
                continue
            os.unlink(entry.path)
        except FileNotFoundError:  # deleted meanwhile, e.g. by a concurrent purge
            continue
        removed += is_result
    return removed
