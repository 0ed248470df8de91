"""Perceptual hashes: copies of a picture stay close, different pictures do not, groups are found exactly."""

import io
import time

import numpy as np
import pytest
from PIL import Image

from annotator.images.perceptual import (
    DEFAULT_THRESHOLD,
    HEX_DIGITS,
    hamming,
    hash_words,
    near_duplicate_groups,
    near_duplicate_pairs,
    perceptual_hash,
)
from annotator.images.portraits import generate_portraits


def _jpeg(picture: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _hex(value: int) -> str:
    return format(value, f"0{HEX_DIGITS}x")


def test_reencoded_and_resized_copies_stay_within_the_default_threshold_and_other_photos_do_not():
    faces = generate_portraits(12, seed=5).faces
    pictures = [Image.fromarray(np.clip(np.rint(face * 255), 0, 255).astype(np.uint8)) for face in faces]
    hashes = [perceptual_hash(p) for p in pictures]
    assert all(len(h) == HEX_DIGITS for h in hashes)
    for picture, original in zip(pictures, hashes):
        half = picture.resize((picture.width // 2, picture.height // 2))
        for copy in (_jpeg(picture, 50), _jpeg(picture, 90), half, picture.convert("L").convert("RGB")):
            assert hamming(original, perceptual_hash(copy)) <= DEFAULT_THRESHOLD
    apart = [hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1:]]
    assert min(apart) > DEFAULT_THRESHOLD


def test_groups_join_copies_transitively_and_are_numbered_by_first_member():
    zero, ones = 0, (1 << 256) - 1
    hashes = [_hex(zero), _hex(ones), _hex((1 << 20) - 1), _hex((1 << 40) - 1), None, _hex(ones ^ 0xFFFFFF)]
    # 0-2: 20 bits apart, 2-3: 20 more (0-3: 40, over the threshold); 1-5: 24; the missing hash stands alone.
    assert near_duplicate_groups(hashes) == [0, 1, 0, 0, 2, 1]
    assert near_duplicate_groups(hashes, threshold=0) == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="0..255"):
        near_duplicate_groups(hashes, threshold=256)
    with pytest.raises(ValueError, match="64 hex digits"):
        near_duplicate_groups(["abc"])


@pytest.mark.parametrize("threshold", [0, 3, 24, 40])
def test_multi_index_search_finds_exactly_the_pairs_a_full_comparison_finds(threshold):
    rng = np.random.default_rng(threshold)
    hashes = []
    for base in (int.from_bytes(rng.bytes(32), "big") for _ in range(30)):
        # Copies 0 to 60 random bits away, so pairs lie on both sides of every threshold.
        for flips in [0, 2, *rng.integers(0, 60, 4)]:
            hashes.append(_hex(base ^ sum(1 << int(bit) for bit in rng.choice(256, flips, replace=False))))
    words = hash_words(hashes)
    distance = np.bitwise_count(words[:, None, :] ^ words[None, :, :]).sum(axis=2)
    expected = {(i, j) for i, j in zip(*np.nonzero(distance <= threshold)) if i < j}
    found = {tuple(pair) for pair in near_duplicate_pairs(words, threshold).tolist()}
    assert found == expected and expected


def test_a_hundred_thousand_hashes_group_in_seconds():
    rng = np.random.default_rng(0)
    hashes = [_hex(int.from_bytes(rng.bytes(32), "big")) for _ in range(100_000)]
    hashes[10] = _hex(int(hashes[5], 16) ^ 0b1011)  # a copy three bits from hash 5
    started = time.monotonic()
    groups = near_duplicate_groups(hashes)
    assert time.monotonic() - started < 60  # a few seconds here; comparing every pair would take many minutes
    assert groups[10] == groups[5] and len(set(groups)) == 99_999
