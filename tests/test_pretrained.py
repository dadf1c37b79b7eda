"""The FFE loads torchvision ResNet-18 checkpoints: its features equal a plain torch ResNet-18's."""

import hashlib

import numpy as np
import pytest

from cmnet_keras import assets, pretrained
from cmnet_keras.config import get_config
from cmnet_keras.layers import FacialFeatureEncoder
from cmnet_keras.models import build_cmnet

torch = pytest.importorskip("torch")
nn = torch.nn

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # torchvision's ImageNet normalisation


class TorchBasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock, with its module names."""

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class TorchResNet18(nn.Module):
    """torchvision.models.resnet18, with its module names; `features` stops before `fc`."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        planes = (64, 128, 256, 512)
        for i, width in enumerate(planes):
            inplanes = planes[max(i - 1, 0)]
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(TorchBasicBlock(inplanes, width, stride),
                                                         TorchBasicBlock(width, width, 1)))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, 1000)

    def features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


@pytest.fixture(scope="module")
def torch_resnet(tmp_path_factory):
    """(eval-mode torch ResNet-18 with random weights and BatchNorm statistics, its saved state dict path)."""
    torch.manual_seed(0)
    net = TorchResNet18()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.2)
                module.running_mean.normal_(0.0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    net.eval()
    path = tmp_path_factory.mktemp("torch") / "resnet18.pth"
    torch.save(net.state_dict(), path)
    return net, path


def loaded_ffe(path, size, frames=2):
    ffe = FacialFeatureEncoder(64, (2, 2, 2, 2), torchvision=True)
    ffe.build((None, frames, size, size, 3))
    pretrained.load_ffe_weights(ffe, str(path))
    return ffe


def check_features(net, ffe, batch, frames, size):
    images = np.random.default_rng(size).uniform(0.0, 1.0, (batch, frames, size, size, 3)).astype(np.float32)
    ours = np.asarray(ffe(images, training=False))
    normalised = (images.reshape(-1, size, size, 3) - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    with torch.no_grad():
        expected = net.features(torch.from_numpy(normalised.transpose(0, 3, 1, 2).copy())).numpy()
    assert ours.shape == (batch, frames, 512)
    np.testing.assert_allclose(ours.reshape(-1, 512), expected, atol=1e-4, rtol=1e-4)


def test_reader_matches_torch_state_dict(torch_resnet):
    net, path = torch_resnet
    state = pretrained.read_torch_state_dict(path)
    assert set(state) == set(net.state_dict())
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(state[key], value.numpy(), err_msg=key)


def test_features_equal_torch_64px(torch_resnet):
    net, path = torch_resnet
    check_features(net, loaded_ffe(path, 64, frames=3), batch=2, frames=3, size=64)


def test_features_equal_torch_224px(torch_resnet):
    net, path = torch_resnet
    check_features(net, loaded_ffe(path, 224), batch=1, frames=2, size=224)


def test_odd_size_matches_torch(torch_resnet):
    """Odd sizes: PyTorch's floor((H + 2p - k) / s) + 1 at every stride, not Keras's ceil(H / s)."""
    net, path = torch_resnet
    check_features(net, loaded_ffe(path, 45, frames=1), batch=1, frames=1, size=45)


def save_state(tmp_path, state):
    path = tmp_path / "edited.pth"
    torch.save(state, path)
    return path


@pytest.mark.parametrize("edit, named", [
    (lambda s: s.pop("layer3.1.bn2.running_var"), "layer3.1.bn2.running_var"),
    (lambda s: s.__setitem__("layer5.0.conv1.weight", torch.zeros(1)), "layer5.0.conv1.weight"),
    (lambda s: s.__setitem__("layer2.0.conv1.weight", torch.zeros(128, 64, 5, 5)), "layer2.0.conv1.weight"),
])
def test_bad_keys_are_named(torch_resnet, tmp_path, edit, named):
    state = dict(torch_resnet[0].state_dict())
    edit(state)
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        loaded_ffe(save_state(tmp_path, state), 32)


def test_classifier_and_counters_are_ignored(torch_resnet, tmp_path):
    state = {k: v for k, v in torch_resnet[0].state_dict().items()
             if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    loaded_ffe(save_state(tmp_path, state), 32)


def test_not_a_state_dict_is_refused(tmp_path):
    path = save_state(tmp_path, {"model": nn.Linear(2, 2)})
    with pytest.raises(ValueError, match="torch.nn.modules.linear.Linear"):
        pretrained.read_torch_state_dict(path)
    (tmp_path / "plain.pth").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="plain.pth"):
        pretrained.read_torch_state_dict(tmp_path / "plain.pth")


def test_other_widths_are_refused(torch_resnet):
    with pytest.raises(ValueError, match="ffe_width=16"):
        get_config("demo", ffe_weights="imagenet")
    with pytest.raises(ValueError, match="ffe_blocks"):
        get_config("paper", ffe_blocks=(1, 1, 1, 1), ffe_weights=str(torch_resnet[1]))
    ffe = FacialFeatureEncoder(16, (2, 2, 2, 2))
    ffe.build((None, 1, 32, 32, 3))
    with pytest.raises(ValueError, match="ffe_width=16"):
        pretrained.load_torchvision_weights(ffe, pretrained.read_torch_state_dict(torch_resnet[1]))
    with pytest.raises(ValueError, match="ffe_weights must be"):
        get_config("paper", ffe_weights="resnet18.onnx")


def test_build_cmnet_loads_weights_and_keras_round_trip(torch_resnet, tmp_path):
    net, path = torch_resnet
    config = get_config("paper", image_size=32, num_frames=3, lstm_units=8, ice_filters=(4,), ice_dim=4,
                        ffe_weights=path)
    model = build_cmnet(config, compile=False)
    assert model.ffe.torchvision
    expected = net.state_dict()["layer4.1.conv2.weight"].numpy().transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(np.asarray(model.ffe.stages[-1].conv2.kernel), expected)
    saved = tmp_path / "ffe.weights.h5"
    pretrained.save_ffe_weights(model.ffe, saved)
    again = build_cmnet(config.replace(ffe_weights=str(saved)), compile=False)
    for a, b in zip(model.ffe.weights, again.ffe.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    scratch = build_cmnet(config.replace(ffe_weights=None), compile=False)
    assert not scratch.ffe.torchvision


def _local_checkpoint(tmp_path, monkeypatch, data):
    """The checkpoint's address as a file:// URL of `data` (no network), the cache in `tmp_path / "cache"`."""
    source = tmp_path / "server" / "resnet18-f37072fd.pth"
    source.parent.mkdir()
    source.write_bytes(data)
    monkeypatch.setenv("CMNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(assets, "RESNET18_IMAGENET_URL", source.as_uri())
    return source


def test_imagenet_download_checks_sha256(tmp_path, monkeypatch):
    """Wrong bytes at the address are refused and not cached."""
    _local_checkpoint(tmp_path, monkeypatch, b"not the checkpoint")
    with pytest.raises(RuntimeError, match=f"Checksum mismatch .*expected sha256 {assets.RESNET18_IMAGENET_SHA256}"):
        assets.resnet18_imagenet_path()
    assert not list((tmp_path / "cache").glob("resnet18*"))


def test_imagenet_checkpoint_is_downloaded_once_then_read_offline(tmp_path, monkeypatch):
    data = b"a checkpoint"
    source = _local_checkpoint(tmp_path, monkeypatch, data)
    monkeypatch.setattr(assets, "RESNET18_IMAGENET_SHA256", hashlib.sha256(data).hexdigest())
    path = assets.resnet18_imagenet_path()
    assert path == tmp_path / "cache" / "resnet18-f37072fd.pth" and path.read_bytes() == data
    source.unlink()  # offline from now on
    assert assets.resnet18_imagenet_path() == path and path.read_bytes() == data
    path.unlink()
    with pytest.raises(RuntimeError, match=f"Could not download .*offline, put the file there first: {path}"):
        assets.resnet18_imagenet_path()
