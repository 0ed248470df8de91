import numpy as np

from annotator.images.portraits import LEVELS, generate_portraits, write_portrait_folder


def test_generation_is_deterministic():
    a, b = generate_portraits(20, seed=3), generate_portraits(20, seed=3)
    assert np.array_equal(a.faces, b.faces) and np.array_equal(a.eyes, b.eyes)
    assert not np.array_equal(a.faces, generate_portraits(20, seed=4).faces)


def test_shapes_ranges_and_levels():
    p = generate_portraits(300, seed=0)
    assert p.faces.shape == (300, 120, 120, 3) and p.faces.dtype == np.float32
    assert 0.0 <= p.faces.min() and p.faces.max() <= 1.0
    for name in ("eyes", "mouth", "background_mean"):
        values, counts = np.unique(p.labels(name), return_counts=True)
        assert list(values) == list(LEVELS) and counts.min() > 70


def test_labels_do_not_depend_on_gender():
    p = generate_portraits(1200, seed=1)
    assert 0.4 < p.gender.mean() < 0.6
    for name in ("eyes", "mouth", "background_mean"):
        labels = p.labels(name)
        assert abs(labels[p.gender == 0].mean() - labels[p.gender == 1].mean()) < 0.1


def test_labels_show_where_the_models_look():
    p = generate_portraits(400, seed=2)
    background = p.faces[:, :6, :6].mean(axis=(1, 2, 3))  # a corner is background
    assert background[p.background_mean == 1.0].min() > background[p.background_mean == 0.0].max()
    mouth = p.faces[:, 60:120, 30:90].min(axis=(1, 2)).mean(axis=1)
    assert mouth[p.mouth == 1.0].mean() < mouth[p.mouth == 0.0].mean()


def test_written_folder_round_trips(tmp_path):
    from annotator.images.decoding import decode_face

    paths = write_portrait_folder(tmp_path / "p", 3, seed=5)
    assert [p.name for p in paths] == ["portrait_00000.jpg", "portrait_00001.jpg", "portrait_00002.jpg"]
    original = generate_portraits(3, seed=5).faces[0]
    assert np.abs(decode_face(paths[0]) - original).mean() < 0.03
