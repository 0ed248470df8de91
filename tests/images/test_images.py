import hashlib
import os

import numpy as np
import pytest
from PIL import Image

from annotator.images.decoding import DecodeError, ReasonCode, decode_face
from annotator.images.discovery import discover, sniff_format


def reason(path, **kwargs):
    with pytest.raises(DecodeError) as caught:
        decode_face(path, **kwargs)
    return caught.value.failure.reason


def solid(mode, color, size=(40, 30)):
    return Image.new(mode, size, color)


@pytest.mark.parametrize("name, image, expected", [
    ("rgb.jpg", solid("RGB", (255, 0, 0)), (1, 0, 0)),
    ("rgb.png", solid("RGB", (0, 255, 0)), (0, 1, 0)),
    ("cmyk.jpg", solid("CMYK", (0, 255, 255, 0)), (1, 0, 0)),
    ("grey.png", solid("L", 128), (0.5, 0.5, 0.5)),
    ("grey_alpha.png", solid("LA", (200, 255)), (0.78, 0.78, 0.78)),
    ("palette.gif", solid("RGB", (0, 0, 255)).convert("P"), (0, 0, 1)),
    ("rgba.png", solid("RGBA", (255, 0, 0, 255)), (1, 0, 0)),
    ("bilevel.png", solid("1", 1), (1, 1, 1)),
    ("été photo ü.jpg", solid("RGB", (255, 255, 255)), (1, 1, 1)),
])
def test_every_mode_decodes_to_rgb(tmp_path, name, image, expected):
    path = tmp_path / name
    image.save(path)
    face = decode_face(path)
    assert face.shape == (120, 120, 3) and face.dtype == np.float32
    assert np.allclose(face.mean(axis=(0, 1)), expected, atol=0.03)


def test_transparent_pixels_become_black(tmp_path):
    solid("RGBA", (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert decode_face(tmp_path / "clear.png").max() == 0.0
    palette = solid("P", 0)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "clear.gif", transparency=0)
    assert decode_face(tmp_path / "clear.gif").max() == 0.0


def test_sixteen_bit_greyscale_keeps_its_range(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 120).astype(np.uint16), (120, 1))
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    face = decode_face(tmp_path / "deep.png")
    assert face.min() < 0.02 and face.max() > 0.98 and 0.4 < face.mean() < 0.6


def test_exif_orientation_is_applied(tmp_path):
    upright = np.zeros((60, 120, 3), np.uint8)
    upright[:, :60] = (255, 0, 0)
    upright[:, 60:] = (0, 0, 255)  # red left, blue right
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # as a camera held sideways stores it
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display", which undoes ROTATE_90 (counter-clockwise)
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    face = decode_face(tmp_path / "phone.jpg")
    assert face[:, :50, 0].mean() > 0.9 and face[:, 70:, 2].mean() > 0.9


def test_a_jpeg_is_decoded_at_reduced_scale_with_the_same_result(tmp_path):
    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).resize((960, 960), Image.NEAREST)
    big.save(tmp_path / "big.jpg", quality=95)
    reference = np.asarray(big.resize((120, 120), Image.BILINEAR, reducing_gap=3.0), np.float32) / 255
    assert np.abs(decode_face(tmp_path / "big.jpg") - reference).mean() < 0.05


def test_truncated_and_corrupt_files(tmp_path):
    solid("RGB", (10, 20, 30), (400, 400)).save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "half.jpg").write_bytes(data[: len(data) // 2])
    assert reason(tmp_path / "half.jpg") is ReasonCode.TRUNCATED
    (tmp_path / "garbage.jpg").write_bytes(data[:4] + os.urandom(2000))
    assert reason(tmp_path / "garbage.jpg") in (ReasonCode.DECODE_ERROR, ReasonCode.TRUNCATED)
    solid("RGB", (1, 2, 3), (200, 200)).save(tmp_path / "whole.png")
    png = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(png[: len(png) - 30])
    assert reason(tmp_path / "cut.png") in (ReasonCode.TRUNCATED, ReasonCode.DECODE_ERROR)


def test_decompression_bombs_are_refused_before_decoding(tmp_path):
    Image.new("1", (8000, 8000)).save(tmp_path / "bomb.png")
    assert (tmp_path / "bomb.png").stat().st_size < 100_000
    assert reason(tmp_path / "bomb.png", max_pixels=1_000_000) is ReasonCode.TOO_LARGE


def test_unreadable_paths(tmp_path):
    (tmp_path / "folder.jpg").mkdir()
    assert reason(tmp_path / "folder.jpg") is ReasonCode.UNREADABLE
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "missing.jpg")
    assert reason(tmp_path / "dangling.jpg") is ReasonCode.UNREADABLE


def test_content_must_match_the_submitted_hash(tmp_path):
    solid("RGB", (5, 5, 5)).save(tmp_path / "a.png")
    digest = hashlib.sha256((tmp_path / "a.png").read_bytes()).hexdigest()
    assert decode_face(tmp_path / "a.png", expected_sha256=digest).shape == (120, 120, 3)
    assert reason(tmp_path / "a.png", expected_sha256="0" * 64) is ReasonCode.CHANGED


def test_discovery_goes_by_content(tmp_path):
    solid("RGB", (1, 1, 1)).save(tmp_path / "disguised.txt", "PNG")
    (tmp_path / "sub").mkdir()
    solid("RGB", (2, 2, 2)).save(tmp_path / "sub" / "b.jpg")
    (tmp_path / "text.jpg").write_text("not a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / ".hidden.png").write_bytes((tmp_path / "sub" / "b.jpg").read_bytes())
    found, failures = discover(tmp_path)
    assert sorted(f.path.name for f in found) == ["b.jpg", "disguised.txt"]
    assert {f.path.name: f.format for f in found} == {"b.jpg": "JPEG", "disguised.txt": "PNG"}
    for item in found:
        assert item.sha256 == hashlib.sha256(item.path.read_bytes()).hexdigest()
    assert {p.name: f.reason for p, f in failures} == {"text.jpg": ReasonCode.NOT_AN_IMAGE,
                                                       "empty.png": ReasonCode.NOT_AN_IMAGE}


def test_discovery_follows_symlinked_folders_once(tmp_path):
    for name, shade in (("male", 1), ("female", 2)):
        (tmp_path / "store" / name).mkdir(parents=True)
        solid("RGB", (shade, shade, shade)).save(tmp_path / "store" / name / "a.png")
    submitted = tmp_path / "submitted"
    submitted.mkdir()
    (submitted / "men").symlink_to(tmp_path / "store" / "male")
    (submitted / "women").symlink_to(tmp_path / "store" / "female")
    (submitted / "women again").symlink_to(tmp_path / "store" / "female")
    (tmp_path / "store" / "male" / "loop").symlink_to(submitted)
    found, failures = discover(submitted)
    assert [str(f.path.relative_to(submitted)) for f in found] == ["men/a.png", "women/a.png"]
    assert failures == []


@pytest.mark.parametrize("head, expected", [
    (b"\xff\xd8\xff\xe0", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF89a", "GIF"), (b"BM\x00\x00", "BMP"),
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WEBP"), (b"P6\n", "PPM"),
    (b"hello", None), (b"", None),
])
def test_sniffing(head, expected):
    assert sniff_format(head) == expected
