"""The teachers' measures and their mappings onto the seed scale, on hand-made landmarks and pixels."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.teachers.measures import (
    EYES_MAPPING,
    MIRROR_ORDER,
    MOUTH_MAPPING,
    background_brightness,
    eye_aspect_ratio,
    eyes_ratio,
    head_regions,
    median_measure,
    mouth_ratio,
    unmirrored,
)


def face_points(eye_open: float = 8.0, mouth_gap: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """68 points of a frontal face in a 240 view: eyes 32 px wide, lids ``eye_open`` apart, a 40 px mouth."""
    points = np.zeros((68, 2))
    points[0:17] = np.column_stack([np.linspace(70, 170, 17), 120 + 80 * np.sin(np.linspace(0, np.pi, 17))])
    points[17:27] = np.column_stack([np.linspace(80, 160, 10), np.full(10, 80.0)])
    for start, left in ((36, 84.0), (42, 124.0)):
        half = eye_open / 2
        points[start:start + 6] = [[left, 95], [left + 10, 95 - half], [left + 22, 95 - half], [left + 32, 95],
                                   [left + 22, 95 + half], [left + 10, 95 + half]]
    points[48:60] = np.column_stack([np.linspace(100, 140, 12), np.full(12, 160.0)])
    points[60:68] = [[100, 160], [110, 160 - mouth_gap / 2], [120, 160 - mouth_gap / 2], [130, 160 - mouth_gap / 2],
                     [140, 160], [130, 160 + mouth_gap / 2], [120, 160 + mouth_gap / 2], [110, 160 + mouth_gap / 2]]
    return (points - 120) * scale + 120


def test_eye_aspect_ratio_is_lid_gap_over_width() -> None:
    assert eye_aspect_ratio(face_points(eye_open=8.0)[36:42]) == pytest.approx(8 / 32)
    assert eyes_ratio(face_points(eye_open=0.0)) == 0.0
    # A ratio: the same face twice as large measures the same.
    assert eyes_ratio(face_points(eye_open=6.0, scale=2.0)) == pytest.approx(eyes_ratio(face_points(eye_open=6.0)))


def test_mouth_aspect_ratio_is_inner_lip_gap_over_corner_distance() -> None:
    assert mouth_ratio(face_points(mouth_gap=0.0)) == 0.0
    assert mouth_ratio(face_points(mouth_gap=10.0)) == pytest.approx(10 / 40)


@pytest.mark.parametrize(("mapping", "raw", "value"), [
    (EYES_MAPPING, 0.05, 0.0), (EYES_MAPPING, 0.10, 0.0), (EYES_MAPPING, 0.14, 0.25), (EYES_MAPPING, 0.18, 0.5),
    (EYES_MAPPING, 0.23, 0.75), (EYES_MAPPING, 0.28, 1.0), (EYES_MAPPING, 0.40, 1.0),
    (MOUTH_MAPPING, 0.0, 0.0), (MOUTH_MAPPING, 0.04, 0.0), (MOUTH_MAPPING, 0.16, 0.5), (MOUTH_MAPPING, 0.28, 0.75),
    (MOUTH_MAPPING, 0.40, 1.0), (MOUTH_MAPPING, 0.9, 1.0),
])
def test_mappings_pass_through_their_anchors_and_clamp(mapping, raw, value) -> None:  # type: ignore[no-untyped-def]
    assert mapping(raw) == pytest.approx(value)


def test_mapping_is_written_down() -> None:
    assert EYES_MAPPING.describe() == "EAR 0.10 -> 0, 0.18 -> 0.5, 0.28 -> 1"


def test_points_fitted_on_the_mirror_image_come_back_in_the_views_coordinates_and_order() -> None:
    rng = np.random.default_rng(0)
    points = face_points(eye_open=6.0, mouth_gap=9.0) + rng.normal(0.0, 3.0, (68, 2))  # no longer symmetric
    # What a perfect fit on the mirror image gives: point i lies where the face's mirror twin of i lies, flipped.
    mirror_fit = np.column_stack([239 - points[MIRROR_ORDER, 0], points[MIRROR_ORDER, 1]])
    assert np.allclose(unmirrored(mirror_fit, 240), points)
    assert list(MIRROR_ORDER[MIRROR_ORDER]) == list(range(68))  # mirroring twice changes nothing
    assert (MIRROR_ORDER[36], MIRROR_ORDER[60], MIRROR_ORDER[62], MIRROR_ORDER[0]) == (45, 64, 62, 16)


def test_median_measure_outvotes_a_wild_fit_and_skips_measureless_ones() -> None:
    fits = np.stack([face_points(mouth_gap=gap) for gap in (9.0, 10.0, 11.0, 30.0)])
    assert median_measure(fits, mouth_ratio) == pytest.approx(10.5 / 40)
    degenerate = face_points()
    degenerate[60:68] = 120.0  # the mouth's corners on one pixel: no ratio
    assert median_measure(np.stack([degenerate, face_points(mouth_gap=8.0)]), mouth_ratio) == pytest.approx(0.2)
    assert np.isnan(median_measure(degenerate[None], mouth_ratio))


def painted_view(background: float, hair: float, skin: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """A 240 view: uniform background, the hair ring and the face painted from the regions' own masks."""
    points = face_points()
    back, hair_mask = head_regions(points, (240, 240))
    view = np.full((240, 240, 3), skin, np.float32)
    view[back] = background
    view[hair_mask] = hair
    return view, points


@pytest.mark.parametrize(("background", "hair", "expected"), [
    (1.0, 0.1, 1.0),  # white wall, dark hair: bright
    (0.55, 0.1, 0.5),  # mid-grey wall: mid-tone
    (0.1, 0.1, 0.0),  # as dark as the hair
    (0.05, 0.3, 0.0),  # darker than the hair
    (0.8, 0.6, 0.5),  # relative to the hair: a light wall behind blond hair is mid-tone
])
def test_background_is_measured_relative_to_the_hair(background: float, hair: float, expected: float) -> None:
    view, points = painted_view(background, hair)
    measured = background_brightness(view, np.ones((240, 240), bool), points)
    assert measured is not None
    assert measured.value == pytest.approx(expected, abs=1e-6)


def test_filled_pixels_are_neither_background_nor_hair() -> None:
    view, points = painted_view(1.0, 0.1)
    valid = np.ones((240, 240), bool)
    valid[:, :60] = False
    view[:, :60] = 0.0  # what the warp fills beyond the photo's edge: black, not a dark background
    measured = background_brightness(view, valid, points)
    assert measured is not None and measured.value == pytest.approx(1.0)


def test_no_value_when_the_face_fills_the_view() -> None:
    view, points = painted_view(1.0, 0.1)
    back, _ = head_regions(points, (240, 240))
    assert background_brightness(view, ~back, points) is None
