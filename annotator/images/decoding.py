"""Decode images into photos and faces; every problem becomes a reason code, never an exception to the caller."""

from __future__ import annotations

import enum
import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from annotator.images.sources import is_throttled, is_uri, read_bytes

FACE_SIZE = 120
"""Side of the canonical aligned face: what every face is decoded or warped to, and every crop is cut from."""
MAX_IMAGE_PIXELS = 40_000_000
PHOTO_DRAFT_SIDE = 2048  # photos keep this much resolution for detection and alignment


class ReasonCode(str, enum.Enum):
    """Why an image could not be annotated."""

    NOT_AN_IMAGE = "not_an_image"
    DECODE_ERROR = "decode_error"
    TRUNCATED = "truncated"
    TOO_LARGE = "too_large"
    UNREADABLE = "unreadable"
    CHANGED = "changed"
    NO_FACE = "no_face"
    MISSING = "missing"
    ACCESS_DENIED = "access_denied"
    THROTTLED = "throttled"


@dataclass(frozen=True)
class DecodeFailure:
    """A reason code with one readable sentence."""

    reason: ReasonCode
    detail: str


class DecodeError(Exception):
    """An image that cannot be turned into a face array."""

    def __init__(self, failure: DecodeFailure) -> None:
        super().__init__(failure.detail)
        self.failure = failure


def _to_rgb(image: Image.Image) -> Image.Image:
    # 16-bit and float greyscale must be rescaled: Pillow's own convert("RGB") clips them to 255.
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or pixels.max(initial=0) > 255 else 255.0
        grey = np.clip(pixels / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        # Transparent pixels become black: the models saw opaque photos, and black is what most exporters use.
        background = Image.new("RGB", image.size, (0, 0, 0))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")


def _oriented(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the picture; use it as stored
        return image


def read_failure(error: Exception, location: str | Path) -> DecodeFailure:
    """Why ``location`` could not be read: a local file is ``unreadable``; an object is ``missing``,
    ``access_denied``, ``throttled`` (after its client's retries) or ``unreadable``."""
    if not is_uri(location):
        return DecodeFailure(ReasonCode.UNREADABLE,
                             f"cannot read the file: {getattr(error, 'strerror', None) or error}")
    if isinstance(error, FileNotFoundError):
        return DecodeFailure(ReasonCode.MISSING, "no such object (deleted, or never there)")
    if isinstance(error, PermissionError):
        return DecodeFailure(ReasonCode.ACCESS_DENIED, f"access denied reading the object ({error}); check the "
                             "store credentials of the process that reads it")
    if is_throttled(error):
        return DecodeFailure(ReasonCode.THROTTLED, f"the store kept throttling reads after every retry ({error}); "
                             "`annotate jobs retry JOB` tries again")
    return DecodeFailure(ReasonCode.UNREADABLE, f"cannot read the object: {type(error).__name__}: {error}")


def read_checked(path: str | Path, expected_sha256: str | None = None) -> bytes:
    """The bytes of a file or object, or :class:`DecodeError` (unreadable, missing, ..., or ``changed`` when
    they are not the ones hashed at submit)."""
    try:
        data = read_bytes(str(path))
    except OSError as error:
        raise DecodeError(read_failure(error, path)) from None
    except Exception as error:
        if not is_uri(path):
            raise
        raise DecodeError(read_failure(error, path)) from None
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise DecodeError(DecodeFailure(
            ReasonCode.CHANGED, "the file changed since it was submitted; submit the folder again to annotate it"))
    return data


def _open(data: bytes, max_pixels: int, draft_side: int) -> Image.Image:
    """The upright RGB picture in ``data``; JPEGs are decoded at a reduced scale when still >= ``draft_side``."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise DecodeError(DecodeFailure(
                    ReasonCode.TOO_LARGE,
                    f"image is {width}x{height} = {width * height:,} pixels, over the {max_pixels:,} limit"))
            if image.format == "JPEG":
                image.draft("RGB", (draft_side, draft_side))  # decode at a reduced scale: about twice as fast
            image.load()
        except DecodeError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise DecodeError(DecodeFailure(ReasonCode.TOO_LARGE, str(error))) from None
        except UnidentifiedImageError:
            # Discovery already recognised the format from its first bytes, so the header itself is damaged.
            raise DecodeError(DecodeFailure(ReasonCode.DECODE_ERROR,
                                            "the file starts like an image but its header cannot be read")) from None
        except OSError as error:
            message = str(error)
            if "truncated" in message or "broken data stream" in message or "end of file" in message.lower():
                raise DecodeError(DecodeFailure(ReasonCode.TRUNCATED, f"the file ends early ({message})")) from None
            raise DecodeError(DecodeFailure(ReasonCode.DECODE_ERROR, f"corrupt image data ({message})")) from None
        except (SyntaxError, ValueError, TypeError, EOFError, IndexError, struct_error()) as error:
            raise DecodeError(DecodeFailure(ReasonCode.DECODE_ERROR, f"corrupt image data ({error})")) from None
        return _to_rgb(_oriented(image))


def struct_error() -> type[Exception]:
    """``struct.error``, raised by some Pillow plugins on short headers."""
    import struct

    return struct.error


def _guarded(path: str | Path, expected_sha256: str | None, max_pixels: int, draft_side: int,
             data: bytes | None = None) -> Image.Image:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("ImageFile.LOAD_TRUNCATED_IMAGES is set; truncated files would pass as images.")
    try:
        return _open(read_checked(path, expected_sha256) if data is None else data, max_pixels, draft_side)
    except DecodeError:
        raise
    except MemoryError:
        raise DecodeError(DecodeFailure(ReasonCode.TOO_LARGE, "not enough memory to decode the image")) from None
    except Exception as error:  # noqa: BLE001 - any other Pillow failure is a broken file, never a failed chunk
        raise DecodeError(DecodeFailure(ReasonCode.DECODE_ERROR, f"{type(error).__name__}: {error}")) from None


def decode_photo(path: str | Path, *, max_pixels: int = MAX_IMAGE_PIXELS, expected_sha256: str | None = None,
                 draft_side: int = PHOTO_DRAFT_SIDE, data: bytes | None = None) -> Image.Image:
    """Decode a photo (a path or a URI) to an upright (EXIF-rotated) RGB picture, or raise :class:`DecodeError`.

    JPEGs larger than ``draft_side`` on both sides are decoded at a reduced scale. With ``expected_sha256``,
    the bytes read must be the ones hashed when the job was submitted. ``data`` are the bytes already read
    with :func:`read_checked`.
    """
    return _guarded(path, expected_sha256, max_pixels, draft_side, data)


def decode_face(path: str | Path, *, size: int = FACE_SIZE, max_pixels: int = MAX_IMAGE_PIXELS,
                expected_sha256: str | None = None, data: bytes | None = None) -> np.ndarray:
    """Decode an image into a (size, size, 3) float32 RGB array in 0..1, or raise :class:`DecodeError`.

    With ``expected_sha256``, the bytes read must be the ones that were hashed when the job was submitted,
    so every prediction belongs to the content it is recorded under. ``data`` are the bytes already read with
    :func:`read_checked`.
    """
    return face_array(_guarded(path, expected_sha256, max_pixels, size, data), size)


def face_array(picture: Image.Image, size: int = FACE_SIZE) -> np.ndarray:
    """A decoded aligned portrait as a (size, size, 3) float32 RGB array in 0..1, as :func:`decode_face` gives it."""
    return unit_floats(face_pixels(picture, size))


def unit_floats(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels as float32 in 0..1; float pixels (already in 0..1) as float32, uncopied when they are."""
    pixels = np.asarray(pixels)
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / np.float32(255.0)
    return pixels.astype(np.float32, copy=False)


def face_pixels(picture: Image.Image, size: int = FACE_SIZE) -> np.ndarray:
    """:func:`face_array` as uint8 RGB (size, size, 3): what faces travel as on their way to the chain."""
    resized = picture.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(resized, dtype=np.uint8)
