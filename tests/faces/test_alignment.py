import numpy as np
import pytest
from PIL import Image, ImageDraw

from annotator.faces.alignment import TEMPLATE, align_face, apply_transform, similarity_transform
from annotator.models.specs import get_spec


def _rotation(degrees: float) -> np.ndarray:
    angle = np.radians(degrees)
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def _moved(points: np.ndarray, degrees: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    return scale * points @ _rotation(degrees).T + np.array(shift)


def test_the_template_puts_eyes_and_mouth_inside_their_crops_with_margins():
    eyes, mouth = get_spec("eyes").crop, get_spec("mouth").crop
    for x, y in TEMPLATE[:2]:
        assert eyes.left + 10 <= x <= eyes.right - 10 and eyes.top + 10 <= y <= eyes.bottom - 10
    for x, y in TEMPLATE[3:]:
        assert mouth.left + 10 <= x <= mouth.right - 10 and mouth.top + 10 <= y <= mouth.bottom - 20


@pytest.mark.parametrize("degrees", [-35.0, 0.0, 12.0, 90.0])
def test_similarity_transform_recovers_rotation_scale_and_shift(degrees):
    source = _moved(TEMPLATE, degrees, 2.7, (300.0, -40.0))
    matrix = similarity_transform(source, TEMPLATE)
    np.testing.assert_allclose(apply_transform(matrix, source), TEMPLATE, atol=1e-9)
    np.testing.assert_allclose(np.hypot(*matrix[:, 0]), 1 / 2.7)


def test_similarity_transform_never_mirrors():
    mirrored = TEMPLATE * np.array([-1.0, 1.0])
    matrix = similarity_transform(mirrored, TEMPLATE)
    assert np.linalg.det(matrix[:, :2]) > 0


@pytest.mark.parametrize("bad", [np.zeros((5, 2)), np.zeros((5, 3)), np.zeros((1, 2))])
def test_similarity_transform_refuses_degenerate_points(bad):
    with pytest.raises(ValueError):
        similarity_transform(bad, TEMPLATE[: len(bad)] if bad.shape[1] == 2 else TEMPLATE)


def _marked_photo(points: np.ndarray, size: tuple[int, int]) -> Image.Image:
    photo = Image.new("RGB", size, (0, 0, 0))
    draw = ImageDraw.Draw(photo)
    radius = 0.04 * np.linalg.norm(points[1] - points[0])
    for x, y in points:
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(255, 255, 255))
    return photo


@pytest.mark.parametrize(("degrees", "scale"), [(25.0, 3.0), (-15.0, 1.2), (5.0, 9.0)])
def test_a_tilted_face_comes_out_level_with_its_landmarks_on_the_template(degrees, scale):
    points = _moved(TEMPLATE - 60, degrees, scale, (700.0, 500.0))
    face = align_face(_marked_photo(points, (1400, 1000)), points)
    assert face.shape == (120, 120, 3) and face.dtype == np.float32
    for x, y in TEMPLATE:  # each white dot lands where the template puts its landmark
        window = face[round(y) - 2 : round(y) + 3, round(x) - 2 : round(x) + 3, 0]
        assert window.max() > 0.5, (x, y)
    bright = np.argwhere(face[..., 0] > 0.5)
    assert bright.size and np.all(bright.min(axis=0) >= 35)  # nothing else was drawn there
