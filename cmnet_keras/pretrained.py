"""Pretrained weights of the facial feature encoder (FFE): torchvision ResNet-18 checkpoints or our own.

`CMNetConfig.ffe_weights` names them: "imagenet" (torchvision's
IMAGENET1K_V1 checkpoint, `assets.resnet18_imagenet_path`), a torchvision-layout
`.pth`/`.pt` state dict, or a `.weights.h5` file written by `save_ffe_weights`.
A `.pth` is read without torch: it is a zip holding `<name>/data.pkl`, a pickle
whose tensors point, by key, at raw little-endian storages `<name>/data/<key>`.
"""

import collections
import pathlib
import pickle
import zipfile

import keras
import numpy as np
from keras import layers

RESNET18_WIDTH = 64
RESNET18_BLOCKS = (2, 2, 2, 2)
# The ImageNet classifier, which the FFE has not, and BatchNorm's step counters.
IGNORED_KEYS = ("fc.weight", "fc.bias")
IGNORED_SUFFIX = ".num_batches_tracked"

STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


def weights_kind(ffe_weights):
    """"torchvision" or "keras" for a `ffe_weights` value, None for None; ValueError otherwise."""
    if ffe_weights is None:
        return None
    name = str(ffe_weights)
    if name == "imagenet" or name.endswith((".pth", ".pt")):
        return "torchvision"
    if name.endswith(".weights.h5"):
        return "keras"
    raise ValueError(
        f"ffe_weights must be None, 'imagenet', a torchvision .pth/.pt state dict or a .weights.h5 file, "
        f"got {ffe_weights!r}"
    )


def check_resnet18(ffe_weights, width, blocks):
    """Raises ValueError when torchvision ResNet-18 weights are asked for an FFE of another size."""
    if weights_kind(ffe_weights) == "torchvision" and (width, tuple(blocks)) != (RESNET18_WIDTH, RESNET18_BLOCKS):
        raise ValueError(
            f"ffe_weights={ffe_weights!r} holds a ResNet-18 (ffe_width={RESNET18_WIDTH}, "
            f"ffe_blocks={RESNET18_BLOCKS}); this model has ffe_width={width}, ffe_blocks={tuple(blocks)} "
            f"(use the 'paper' preset or those two values)"
        )


class _Storage:
    def __init__(self, dtype, key):
        self.dtype, self.key = dtype, key


class _TorchUnpickler(pickle.Unpickler):
    """Loads only state dicts: OrderedDicts of tensors; any other class is refused, nothing runs."""

    def __init__(self, file, read_storage):
        super().__init__(file)
        self.read_storage = read_storage

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self.rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"not a plain state dict of tensors: it refers to {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        _, dtype, key, _location, _numel = pid
        return self.read_storage(dtype, str(key))

    @staticmethod
    def rebuild_tensor(storage, offset, size, stride, *_):
        itemsize = storage.itemsize
        view = np.lib.stride_tricks.as_strided(
            storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride), writeable=False
        )
        return np.array(view)


def read_torch_state_dict(path):
    """Reads a state dict saved by `torch.save` (zip format, torch >= 1.6) as {name: numpy array}.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: the file is not a zip-format torch checkpoint of tensors.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ffe_weights: no file {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a zip-format torch checkpoint (re-save it with torch.save in torch >= 1.6)")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError(f"{path}: expected one <name>/data.pkl in the zip, found {pickles}")
        root = pickles[0][: -len("data.pkl")]
        if f"{root}byteorder" in names and archive.read(f"{root}byteorder").strip() != b"little":
            raise ValueError(f"{path}: big-endian checkpoints are not supported")
        storages = {}

        def read_storage(dtype, key):
            if key not in storages:
                data = archive.read(f"{root}data/{key}")
                storages[key] = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"))
            return storages[key]

        with archive.open(pickles[0]) as f:
            try:
                state = _TorchUnpickler(f, read_storage).load()
            except (pickle.UnpicklingError, KeyError, ValueError, TypeError) as error:
                raise ValueError(f"{path}: cannot read it as a torch state dict: {error}") from error
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict {{name: tensor}}, got {type(state).__name__}")
    return dict(state)


def torchvision_variables(ffe):
    """{torchvision ResNet key: (variable, torch-to-Keras transform)} of a built `FacialFeatureEncoder`."""

    def conv(prefix, layer):
        return {f"{prefix}.weight": (layer.kernel, lambda w: np.transpose(w, (2, 3, 1, 0)))}

    def bn(prefix, layer):
        same = lambda w: w  # noqa: E731
        return {f"{prefix}.weight": (layer.gamma, same), f"{prefix}.bias": (layer.beta, same),
                f"{prefix}.running_mean": (layer.moving_mean, same),
                f"{prefix}.running_var": (layer.moving_variance, same)}

    stem_conv, stem_bn = (next(layer for layer in ffe.stem if isinstance(layer, kind))
                          for kind in (layers.Conv2D, layers.BatchNormalization))
    mapping = {**conv("conv1", stem_conv), **bn("bn1", stem_bn)}
    blocks = iter(ffe.stages)
    for stage, count in enumerate(ffe.blocks):
        for i in range(count):
            block, prefix = next(blocks), f"layer{stage + 1}.{i}"
            mapping.update({**conv(f"{prefix}.conv1", block.conv1[-1]), **bn(f"{prefix}.bn1", block.bn1),
                            **conv(f"{prefix}.conv2", block.conv2), **bn(f"{prefix}.bn2", block.bn2)})
            if block.project is not None:
                mapping.update({**conv(f"{prefix}.downsample.0", block.project),
                                **bn(f"{prefix}.downsample.1", block.project_bn)})
    return mapping


def load_torchvision_weights(ffe, state_dict, source="state dict"):
    """Assigns a torchvision ResNet state dict ({key: array}) to a built FFE.

    `fc.*` (the classifier) and `*.num_batches_tracked` are skipped.

    Raises:
        ValueError: a missing, unexpected or wrongly shaped key, named, or an FFE that is not ResNet-18 sized.
    """
    check_resnet18("imagenet", ffe.width, ffe.blocks)
    mapping = torchvision_variables(ffe)
    given = {k for k in state_dict if k not in IGNORED_KEYS and not k.endswith(IGNORED_SUFFIX)}
    missing, extra = sorted(set(mapping) - given), sorted(given - set(mapping))
    if missing or extra:
        raise ValueError(f"{source}: not a torchvision ResNet-18 state dict: missing keys {missing}, "
                         f"unexpected keys {extra}")
    values = {}
    for key, (variable, transform) in mapping.items():
        value = transform(np.asarray(state_dict[key], dtype=np.float32))
        if value.shape != tuple(variable.shape):
            raise ValueError(f"{source}: {key} has shape {np.shape(state_dict[key])}, "
                             f"expected the torch layout of {tuple(variable.shape)}")
        values[key] = value
    for key, (variable, _) in mapping.items():
        variable.assign(values[key])


def save_ffe_weights(ffe, path):
    """Writes a built FFE's weights to a `.weights.h5` file that `ffe_weights=path` loads."""
    keras.saving.save_weights(ffe, str(path))


def load_ffe_weights(ffe, ffe_weights):
    """Loads `ffe_weights` ("imagenet", a torchvision `.pth` or our `.weights.h5`) into a built FFE."""
    kind = weights_kind(ffe_weights)
    if kind == "keras":
        if not pathlib.Path(ffe_weights).is_file():
            raise FileNotFoundError(f"ffe_weights: no file {ffe_weights}")
        keras.saving.load_weights(ffe, str(ffe_weights))
        return
    check_resnet18(ffe_weights, ffe.width, ffe.blocks)
    if ffe_weights == "imagenet":
        from cmnet_keras.assets import resnet18_imagenet_path

        ffe_weights = resnet18_imagenet_path()
    load_torchvision_weights(ffe, read_torch_state_dict(ffe_weights), source=str(ffe_weights))
