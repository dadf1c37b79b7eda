"""Class and sample weights weight L_C only; `--class-weight balanced` uses each fold's training labels (issue 12)."""

import json

import keras
import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

from cmnet_keras import build_cmnet, get_config
from cmnet_keras.commands import train
from cmnet_keras.data import cache
from cmnet_keras.models import CMNet

# Nothing random in a training call (as in test_train's replica test), so two calls see the same terms.
# k starts inside the prototype's range, so that L_Wrst is not 0 on every clip.
DETERMINISTIC = dict(sampler="deterministic", jitter_rate=0.0, grayscale_rate=0.0, blur_rate=0.0, eta_init=1e-6,
                     squeeze_bias_init=0.6)


def _batch():
    rng = np.random.default_rng(0)
    x = {"frames": rng.integers(0, 256, (4, 16, 32, 32, 3)).astype("uint8"), "apex": np.array([0, 5, 9, 15], "int32")}
    return x, np.array([0, 1, 2, 1], "int32")


def _expected_loss(model, x, y, weights):
    """Eq. 10 in numpy: lambda1 mean(L_ID) + lambda2 mean(L_Wrst) + lambda3 sum_i w_i L_C,i / B."""
    outputs = model(x, training=True)
    probs = np.clip(keras.ops.convert_to_numpy(outputs["probs"]), 1e-7, 1 - 1e-7)
    ce = -np.log(probs[np.arange(len(y)), y])
    views = (*outputs["views"], outputs["negatives"])
    id_terms = keras.ops.convert_to_numpy(model.id_loss_fn(y, views))
    wrst_terms = keras.ops.convert_to_numpy(model.wrst_loss_fn(outputs["prototype"], outputs["intensity"]))
    assert id_terms.shape == wrst_terms.shape == (len(y),) and wrst_terms.std() > 0
    l1, l2, l3 = model.config.lambdas
    return l1 * id_terms.mean() + l2 * wrst_terms.mean() + l3 * np.sum(weights * ce) / len(y), ce


def test_sample_weights_weight_only_the_classification_term():
    keras.utils.set_random_seed(0)
    model = build_cmnet(get_config("tiny", **DETERMINISTIC))
    assert model.losses == []
    x, y = _batch()
    weights = np.array([1.0, 2.0, 0.5, 1.0], "float32")
    expected, ce = _expected_loss(model, x, y, weights)
    loss = model.compute_loss(x, y, model(x, training=True), sample_weight=weights)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    unweighted = model.compute_loss(x, y, model(x, training=True))
    # The difference is lambda3's term alone: L_ID and L_Wrst do not see the weights.
    l3 = model.config.lambdas[2]
    assert float(loss) - float(unweighted) == pytest.approx(l3 * np.sum((weights - 1) * ce) / len(y), rel=1e-4)


def test_fit_class_weight_is_the_per_clip_weight_of_its_label():
    keras.utils.set_random_seed(0)
    model = build_cmnet(get_config("tiny", **DETERMINISTIC))
    x, y = _batch()
    class_weight = {0: 0.5, 1: 3.0, 2: 1.5}
    expected, _ = _expected_loss(model, x, y, np.array([class_weight[c] for c in y]))
    history = model.fit(x, y, class_weight=class_weight, batch_size=4, epochs=1, shuffle=False, verbose=0).history
    assert history["loss"][0] == pytest.approx(expected, rel=1e-5)  # the loss of the one step, before its update


@pytest.mark.slow
@pytest.mark.backend
def test_balanced_class_weights_come_from_each_folds_training_labels(tmp_path, synthetic_cache, monkeypatch):
    cache_dir = synthetic_cache(tmp_path / "cache", ["sub01", "sub02", "sub10"])
    passed = []
    fit = CMNet.fit

    def recording_fit(self, *args, **kwargs):
        passed.append(kwargs.get("class_weight"))
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(CMNet, "fit", recording_fit)
    args = ["--cache", str(cache_dir), "--preset", "tiny", "--epochs", "1", "--verbose", "0",
            "--out", str(tmp_path / "run")]
    train.main([*args, "--class-weight", "balanced"])
    index = cache.read_index(cache_dir)
    for number, subject in enumerate(["sub01", "sub02", "sub10"]):
        labels = index.loc[index["subject"] != subject, "label"].to_numpy()
        classes, counts = np.unique(labels, return_counts=True)
        expected = {int(c): len(labels) / (len(classes) * n) for c, n in zip(classes, counts)}  # n / (k n_c)
        np.testing.assert_allclose(compute_class_weight("balanced", classes=classes, y=labels),
                                   [expected[int(c)] for c in classes])
        result = json.loads(next((tmp_path / "run" / "folds").glob(f"{number:02d}_*/result.json")).read_text())
        assert result["subject"] == subject
        assert {int(c): w for c, w in result["class_weight"].items()} == pytest.approx(expected)
        assert passed[number] == pytest.approx(expected)
    assert len({tuple(sorted(p.items())) for p in passed}) > 1  # the folds' weights differ
    settings = json.loads((tmp_path / "run" / "config.json").read_text())["settings"]
    assert settings["class_weight"] == "balanced"
    with pytest.raises(SystemExit) as exit_info:  # resuming without the flag is refused
        train.main(args)
    assert exit_info.value.code == 2
