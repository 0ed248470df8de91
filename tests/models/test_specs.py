import numpy as np
import pytest

from annotator.models.crops import crop_batch
from annotator.models.specs import REGISTRY, UnknownModelError, attribute_names, chain_order, get_spec


def test_chain_order_puts_gender_first():
    names = [spec.name for spec in chain_order()]
    assert names[0] == "gender"
    assert set(names) == {name for name, spec in REGISTRY.items() if not spec.optional}
    assert [spec.name for spec in chain_order(["mouth"])] == ["gender", "mouth"]


def test_identity_is_optional_and_outside_the_default_chain():
    identity = get_spec("identity")
    assert identity.optional and identity.input_shape == (224, 224, 3) and identity.crop.shape == (120, 120)
    assert "identity" not in [spec.name for spec in chain_order()]
    assert attribute_names(include_optional=True) == ["eyes", "mouth", "background_mean", "identity"]


def test_identity_input_is_the_whole_face_enlarged_bilinearly():
    faces = np.zeros((1, 120, 120, 3), np.float32)
    faces[0, :, 60:] = 1.0  # right half white
    enlarged = crop_batch(faces, get_spec("identity"))
    assert enlarged.shape == (1, 224, 224, 3)
    assert enlarged[0, :, :110].max() == 0.0 and enlarged[0, :, 114:].min() == 1.0
    assert 0.0 < enlarged[0, 0, 112, 0] < 1.0  # the edge is interpolated, not copied


def test_attributes_are_the_regressors():
    assert attribute_names() == ["eyes", "mouth", "background_mean"]


def test_unknown_model_names_the_known_ones():
    with pytest.raises(UnknownModelError, match="Known models: gender, eyes"):
        get_spec("hair")


@pytest.mark.parametrize("name, shape", [("gender", (60, 60, 3)), ("eyes", (32, 60, 3)), ("mouth", (60, 60, 3)),
                                         ("background_mean", (120, 120, 3))])
def test_crops_have_the_model_input_shape(name, shape):
    faces = np.random.default_rng(0).random((4, 120, 120, 3), dtype=np.float32)
    assert crop_batch(faces, get_spec(name)).shape == (4, *shape)


def test_crops_cut_the_seed_rectangles():
    faces = np.zeros((1, 120, 120, 3), np.float32)
    faces[:, 30:62, 30:90] = 1.0  # exactly the eyes rectangle
    assert crop_batch(faces, get_spec("eyes")).min() == 1.0
    mouth = crop_batch(faces, get_spec("mouth"))
    assert mouth[0, :2].max() == 1.0 and mouth[0, 2:].max() == 0.0  # rows 60:62 overlap, the rest do not


def test_gender_crop_is_the_area_average_of_the_whole_face():
    faces = np.zeros((1, 120, 120, 3), np.float32)
    faces[0, ::2, ::2] = 1.0
    assert np.allclose(crop_batch(faces, get_spec("gender")), 0.25)


@pytest.mark.parametrize("name, params", [("eyes", 985_073), ("mouth", 1_446_497), ("background_mean", 2_101_857)])
def test_regressor_parameter_counts_match_the_seeds(name, params):
    from annotator.models.architectures import build_model

    model = build_model(get_spec(name))
    assert model.count_params() == params
    assert [tuple(t.shape[1:]) for t in model.inputs] == [get_spec(name).input_shape, (2,)]


def test_gender_outputs_two_probabilities():
    from annotator.models.architectures import build_model

    model = build_model(get_spec("gender"))
    out = model(np.zeros((3, 60, 60, 3), np.float32), training=False).numpy()
    assert out.shape == (3, 2)
    assert np.allclose(out.sum(axis=1), 1.0, atol=1e-5)
