"""Layers of the model helper: encoders, squeeze/extend, view augmentation."""

import keras
import numpy as np
import pytest
import scipy.ndimage
from scipy import stats

from cmnet_keras.layers import (
    BasicBlock,
    ClipFlip,
    Extend,
    FacialFeatureEncoder,
    IntensityCluesEncoder,
    Squeeze,
    ViewAugmentation,
)
from cmnet_keras.layers.view_augmentation import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
)


def _frames(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, shape).astype("float32")


def _resnet18_trunk_params():
    """Trainable parameters of torchvision's resnet18 without `fc`, by hand (He et al. 2016)."""
    conv = lambda k, cin, cout: k * k * cin * cout  # noqa: E731
    bn = lambda c: 2 * c  # noqa: E731  gamma, beta
    total = conv(7, 3, 64) + bn(64)
    cin = 64
    for width in (64, 128, 256, 512):
        for block in range(2):
            total += conv(3, cin, width) + bn(width) + conv(3, width, width) + bn(width)
            if cin != width:
                total += conv(1, cin, width) + bn(width)
            cin = width
    return total


# torchvision's resnet18 (children up to avgpool): trainable parameters of conv1+bn1 and layer1-4.
TORCHVISION_RESNET18 = {"stem": 9_536, "layer1": 147_968, "layer2": 525_568, "layer3": 2_099_712,
                        "layer4": 8_393_728}


def test_ffe_at_paper_width_has_resnet18_stages_and_parameter_counts():
    ffe = FacialFeatureEncoder(64, (2, 2, 2, 2))
    ffe.build((None, 224, 224, 3))
    trunk = _resnet18_trunk_params()
    assert trunk == sum(TORCHVISION_RESNET18.values()) == 11_176_512
    assert sum(int(np.prod(w.shape)) for w in ffe.trainable_weights) == trunk
    assert ffe.count_params() == 11_186_112  # keras-hub's resnet_18 backbone: + BatchNorm moving statistics
    # The published 11.69M of ResNet-18 adds the 512 -> 1000 classifier.
    assert trunk + 512 * 1000 + 1000 == 11_689_512
    assert ffe.output_dim == 512
    shape, stages = (None, 224, 224, 3), {}
    for layer in ffe.stem:
        shape = layer.compute_output_shape(shape)
    stages["stem"] = (shape, sum(int(np.prod(w.shape)) for layer in ffe.stem for w in layer.trainable_weights))
    for i in range(4):
        blocks = ffe.stages[2 * i: 2 * i + 2]
        for block in blocks:
            shape = block.compute_output_shape(shape)
        stages[f"layer{i + 1}"] = (shape, sum(int(np.prod(w.shape)) for b in blocks for w in b.trainable_weights))
    assert {k: v[0] for k, v in stages.items()} == {
        "stem": (None, 56, 56, 64), "layer1": (None, 56, 56, 64), "layer2": (None, 28, 28, 128),
        "layer3": (None, 14, 14, 256), "layer4": (None, 7, 7, 512)}
    assert {k: v[1] for k, v in stages.items()} == TORCHVISION_RESNET18
    out = keras.ops.convert_to_numpy(FacialFeatureEncoder(4, (1, 1, 1, 1))(_frames((1, 2, 64, 64, 3))))
    assert out.shape == (1, 2, 32)


@pytest.mark.parametrize(
    "layer",
    [
        lambda: FacialFeatureEncoder(4, (1, 1, 1, 1)),
        lambda: IntensityCluesEncoder((4, 8), 8),
    ],
    ids=["ffe", "ice"],
)
def test_encoder_on_folded_frames_equals_per_frame_application(layer):
    encoder = layer()
    frames = _frames((2, 3, 32, 32, 3))
    folded = keras.ops.convert_to_numpy(encoder(frames))
    per_frame = np.stack(
        [
            np.stack([keras.ops.convert_to_numpy(encoder(frames[b, t][None]))[0] for t in range(3)])
            for b in range(2)
        ]
    )
    assert folded.shape == (2, 3, encoder.output_dim)
    np.testing.assert_allclose(folded, per_frame, rtol=1e-4, atol=1e-5)


def test_ice_downsamples_once_per_stage():
    ice = IntensityCluesEncoder((4, 8, 16), 8)
    ice.build((None, 32, 32, 3))
    convs = [l for l in ice.stages if isinstance(l, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [4, 8, 16]
    assert all(c.strides == (2, 2) for c in convs)
    assert keras.ops.convert_to_numpy(ice(_frames((5, 32, 32, 3)))).shape == (5, 8)


def test_squeeze_and_extend_are_dense_maps():
    z = _frames((2, 4, 6))
    squeeze = Squeeze()
    k = keras.ops.convert_to_numpy(squeeze(z))
    kernel, bias = squeeze.get_weights()
    np.testing.assert_allclose(k, z @ kernel[:, 0] + bias[0], rtol=1e-5, atol=1e-6)
    extend = Extend(5)
    out = keras.ops.convert_to_numpy(extend(k))
    kernel, bias = extend.get_weights()
    np.testing.assert_allclose(out, k[..., None] * kernel[0] + bias, rtol=1e-5, atol=1e-6)
    assert out.shape == (2, 4, 5)


def test_view_augmentation_is_identity_at_inference():
    images = _frames((2, 3, 16, 16, 3))
    out = ViewAugmentation(seed=0)(images)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), images)


@pytest.mark.backend
def test_view_augmentation_draws_parameters_per_image():
    image = _frames((1, 32, 32, 3))
    images = np.repeat(image, 8, axis=0)
    out = keras.ops.convert_to_numpy(ViewAugmentation(seed=1)(images, training=True))
    assert out.shape == images.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    distinct = {tuple(np.round(o.mean(axis=(0, 1)), 5)) for o in out}
    assert len(distinct) > 4


@pytest.mark.backend
def test_view_augmentation_grayscale_matches_tf_image():
    import tensorflow as tf

    images = _frames((3, 16, 16, 3))
    aug = ViewAugmentation(jitter_strength=0.0, grayscale_rate=1.0, jitter_rate=0.0, blur_rate=0.0, seed=0)
    out = keras.ops.convert_to_numpy(aug(images, training=True))
    np.testing.assert_allclose(out, tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(images)).numpy(), atol=1e-6)


FACTORS = np.array([0.0, 0.4, 1.0, 1.7], "float32")


@pytest.mark.backend
def test_colour_jitter_at_fixed_factors_equals_references():
    """Hue equals `tf.image.adjust_hue`. Brightness, contrast and saturation follow torchvision's ColorJitter
    (the paper's), which differs from tf.image's (additive brightness, per-channel contrast mean, HSV saturation):
    numpy blends with `tf.image.rgb_to_grayscale`, and tf.image's contrast where the two agree (gray images)."""
    import tensorflow as tf

    images = _frames((4, 8, 9, 3), seed=5)
    gray = tf.image.rgb_to_grayscale(images).numpy()
    f = FACTORS[:, None, None, None]

    def got(fn, x=images, factors=FACTORS):
        return keras.ops.convert_to_numpy(fn(keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(factors)))

    np.testing.assert_allclose(got(adjust_brightness), np.clip(images * f, 0, 1), atol=1e-6)
    contrast = np.clip(gray.mean(axis=(1, 2, 3), keepdims=True) * (1 - f) + images * f, 0, 1)
    np.testing.assert_allclose(got(adjust_contrast), contrast, atol=1e-5)
    np.testing.assert_allclose(got(adjust_saturation), np.clip(gray * (1 - f) + images * f, 0, 1), atol=1e-5)
    flat = np.repeat(gray, 3, axis=-1)
    tf_contrast = np.stack([tf.image.adjust_contrast(g, c).numpy() for g, c in zip(flat, FACTORS)])
    # torchvision's gray weights sum to 0.9999: a 1e-4 relative offset of the mean.
    np.testing.assert_allclose(got(adjust_contrast, flat), np.clip(tf_contrast, 0, 1), atol=1e-4)
    deltas = np.array([-0.2, -0.05, 0.1, 0.45], "float32")
    tf_hue = np.stack([tf.image.adjust_hue(x, d).numpy() for x, d in zip(images, deltas)])
    np.testing.assert_allclose(got(adjust_hue, factors=deltas), tf_hue, atol=1e-5)


@pytest.mark.backend
def test_view_augmentation_blur_matches_scipy_gaussian_filter():
    images = _frames((2, 64, 48, 3))
    aug = ViewAugmentation(grayscale_rate=0.0, jitter_rate=0.0, blur_rate=1.0, blur_sigma=(1.3, 1.3), seed=0)
    out = keras.ops.convert_to_numpy(aug(images, training=True))
    radius = 2  # kernel 10% of the shorter side (48 -> 4, made odd: 5 taps)
    expected = scipy.ndimage.gaussian_filter(images, sigma=(0, 1.3, 1.3, 0), mode="mirror", truncate=radius / 1.3)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_view_augmentation_jitter_keeps_gray_pixels_gray_under_hue_and_saturation():
    gray = np.repeat(_frames((4, 8, 8, 1)), 3, axis=-1) * 0.5 + 0.25
    aug = ViewAugmentation(jitter_strength=1.0, grayscale_rate=0.0, jitter_rate=1.0, blur_rate=0.0, seed=3)
    out = keras.ops.convert_to_numpy(aug(gray, training=True))
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-5)
    np.testing.assert_allclose(out[..., 1], out[..., 2], atol=1e-5)
    assert not np.allclose(out, gray, atol=1e-3)


RATES = ("jitter_rate", "grayscale_rate", "blur_rate")
RATE, DRAWS = 0.3, 2000
# Counts of applications that a rate of RATE gives with probability 1 - 1e-6 (two-sided binomial interval,
# 501-702 of 2000); RATE ** 2 (expected 180) or 1 - RATE (1400) lie far outside.
LOW, HIGH = stats.binom.interval(1 - 1e-6, DRAWS, RATE)


def _applied(out, images):
    """Per image: whether the output differs from the input (by more than float rounding)."""
    return np.abs(keras.ops.convert_to_numpy(out) - images).reshape(len(images), -1).max(axis=1) > 1e-3


@pytest.mark.backend
@pytest.mark.parametrize("rate", RATES)
def test_each_augmentation_is_applied_at_its_rate(rate):
    """One noise image DRAWS times, only this augmentation on: it changes about RATE x DRAWS of them."""
    layer = ViewAugmentation(blur_sigma=(1.0, 2.0), seed=11, **{**dict.fromkeys(RATES, 0.0), rate: RATE})
    images = np.repeat(_frames((1, 16, 16, 3)), DRAWS, axis=0)
    assert LOW <= _applied(layer(images, training=True), images).sum() <= HIGH


@pytest.mark.backend
def test_clip_flip_is_applied_at_its_rate():
    clips = np.repeat(_frames((1, 2, 4, 5, 3)), DRAWS, axis=0)
    out = keras.ops.convert_to_numpy(ClipFlip(RATE, seed=4)(clips, training=True))
    flipped = (out == clips[:, :, :, ::-1]).all(axis=(1, 2, 3, 4))
    assert np.array_equal(flipped, _applied(out, clips)) and LOW <= flipped.sum() <= HIGH


LAYERS = {
    "basic_block": (lambda: BasicBlock(4, 2), (2, 8, 8, 3)),
    "ffe": (lambda: FacialFeatureEncoder(4, (1, 2)), (2, 3, 16, 16, 3)),
    "ice": (lambda: IntensityCluesEncoder((4, 8), 6), (2, 3, 16, 16, 3)),
    "squeeze": (lambda: Squeeze(), (2, 4, 6)),
    "extend": (lambda: Extend(5), (2, 4)),
    "augment": (lambda: ViewAugmentation(0.3, 0.1, (0.2, 1.5), jitter_rate=0.7, blur_rate=0.4, seed=7), (2, 16, 16, 3)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_serialization_round_trip(name):
    """The clone computes what the layer does; the augmentation in training, from the same seed."""
    make, shape = LAYERS[name]
    layer = make()
    x = _frames(shape)
    kwargs = {"training": True} if name == "augment" else {}
    expected = keras.ops.convert_to_numpy(layer(x, **kwargs))
    if name == "augment":
        assert np.abs(expected - x).max() > 0.01
    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"].startswith("cmnet_keras>")
    clone = keras.saving.deserialize_keras_object(config)
    assert clone.get_config() == layer.get_config()
    if not clone.built:
        clone.build(shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(clone(x, **kwargs)), expected)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: FacialFeatureEncoder(0), "width=0"),
        (lambda: FacialFeatureEncoder(8, ()), r"blocks=\(\)"),
        (lambda: IntensityCluesEncoder((4, 0), 8), r"filters=\(4, 0\)"),
        (lambda: Extend(0), "got 0"),
        (lambda: ViewAugmentation(grayscale_rate=1.5), "grayscale_rate must be in .0, 1., got 1.5"),
        (lambda: ViewAugmentation(blur_sigma=(2.0, 1.0)), r"\(2.0, 1.0\)"),
    ],
)
def test_bad_layer_arguments_name_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_encoder_rejects_non_image_input():
    with pytest.raises(ValueError, match=r"got shape \(2, 16\)"):
        IntensityCluesEncoder((4,), 4)(np.zeros((2, 16), "float32"))


def test_clip_flip_mirrors_whole_clips_in_training_only():
    frames = _frames((6, 4, 5, 7, 3))
    mirrored = frames[:, :, :, ::-1, :]  # numpy reference: left-right flip of every frame
    np.testing.assert_array_equal(np.asarray(ClipFlip(1.0)(frames, training=True)), mirrored)
    np.testing.assert_array_equal(np.asarray(ClipFlip(1.0)(frames, training=False)), frames)
    np.testing.assert_array_equal(np.asarray(ClipFlip(0.0)(frames, training=True)), frames)
    out = np.asarray(ClipFlip(0.5, seed=3)(np.repeat(frames[:1], 64, axis=0), training=True))
    flipped = [np.array_equal(clip, mirrored[0]) for clip in out]
    kept = [np.array_equal(clip, frames[0]) for clip in out]
    assert all(f != k for f, k in zip(flipped, kept))  # each clip entirely one or the other
    assert 10 < sum(flipped) < 54
    layer = ClipFlip.from_config(ClipFlip(0.3, seed=5).get_config())
    assert (layer.rate, layer.seed) == (0.3, 5)
    with pytest.raises(ValueError, match="rate"):
        ClipFlip(1.5)
