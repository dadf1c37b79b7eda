"""Pretrained weights of the facial feature encoder (FFE): torchvision ResNet-18 checkpoints or our own.

`CMNetConfig.ffe_weights` names them: "imagenet" (torchvision's
IMAGENET1K_V1 checkpoint, `assets.resnet18_imagenet_path`), a torchvision-layout
`.pth`/`.pt` state dict, or a `.weights.h5` file written by `save_ffe_weights`.
A `.pth` is read without torch: it is a zip holding `<name>/data.pkl`, a pickle
whose tensors point, by key, at raw little-endian storages `<name>/data/<key>`.
"""

import collections
import math
import pathlib
import pickle
import zipfile

import keras
import numpy as np
from keras import layers

from cmnet_keras import archives

RESNET18_WIDTH = 64
RESNET18_BLOCKS = (2, 2, 2, 2)
# The ImageNet classifier, which the FFE has not, and BatchNorm's step counters.
IGNORED_KEYS = ("fc.weight", "fc.bias")
IGNORED_SUFFIX = ".num_batches_tracked"

STORAGE_DTYPES = {  # the storages we read (little-endian), by their torch class names
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
}
# Bytes read or built per byte of a checkpoint: torch.save stores its entries uncompressed (about 2x: the
# storages, then the arrays); far more is a zip bomb or a crafted file.
CHECKPOINT_INFLATION = 16
# The largest offset, size, stride or element count read: numpy's byte arithmetic (x 8 bytes) does not overflow.
INDEX_LIMIT = np.iinfo(np.intp).max // 8


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
    """A storage record of the pickle: its dtype (None: one we do not map), its zip entry's key, its element count."""

    def __init__(self, dtype, key, numel):
        self.dtype, self.key, self.numel = dtype, key, numel


class _Tensor:
    """A tensor record of the pickle: a view (offset, size, stride) of a `_Storage`, made once checked."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


class _TorchUnpickler(pickle.Unpickler):
    """Loads only state dicts: OrderedDicts of tensor records; any other class is refused, nothing runs or is read.

    The pickle gets no object it could change for later loads: an immutable type,
    a bound method and strings (the storage types' names).
    """

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self.rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return name
        raise pickle.UnpicklingError(f"not a plain state dict of tensors: it refers to {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unknown persistent id {_describe(pid)}")
        _, storage_type, key, _location, numel = pid
        return _Storage(STORAGE_DTYPES.get(storage_type) if isinstance(storage_type, str) else None, key, numel)

    def rebuild_tensor(self, storage, offset, size, stride, *_):  # and requires_grad, backward hooks, metadata
        return _Tensor(storage, offset, size, stride)


def _describe(value):
    """A value of the pickle for a message: its repr (cut short) if a number, string or tuple of them, else its type."""
    plain = isinstance(value, (int, str)) or isinstance(value, tuple) and all(isinstance(v, (int, str)) for v in value)
    try:
        return repr(value)[:80] if plain else type(value).__name__
    except ValueError:  # an int of more digits than Python writes out
        return "a huge integer"


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INDEX_LIMIT


def _storage_entry(tensor, archive, root):
    """The zip entry of a tensor record's storage, once the record is checked against it.

    Raises:
        ValueError: the storage is of a dtype we do not map, its entry is missing, holds a length that is not a
            multiple of its dtype or other than its declared element count; or the view's offset, size or
            stride are not integers in 0..INDEX_LIMIT or reach past the storage's end, or it holds more
            elements than the storage (a stride-0 view).
    """
    storage = tensor.storage
    if not (isinstance(storage, _Storage) and any(storage.dtype is d for d in STORAGE_DTYPES.values())
            and isinstance(storage.key, str)):
        raise ValueError(f"its storage is not a storage record of {sorted(STORAGE_DTYPES)}")
    entry = f"{root}data/{storage.key}"
    try:
        info = archive.getinfo(entry)
    except KeyError:
        raise ValueError(f"its storage {entry} is not in the zip") from None
    itemsize = storage.dtype.itemsize
    if info.file_size % itemsize:
        raise ValueError(f"its storage {entry} holds {info.file_size} bytes, not a multiple of {itemsize} "
                         f"({storage.dtype.name})")
    if not _is_count(storage.numel) or storage.numel * itemsize != info.file_size:
        raise ValueError(f"its storage {entry} declares {_describe(storage.numel)} elements; the entry holds "
                         f"{info.file_size // itemsize}")
    offset, size, stride = tensor.offset, tensor.size, tensor.stride
    if not (_is_count(offset) and isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
            and all(map(_is_count, size + stride))):
        raise ValueError(f"offset {_describe(offset)}, size {_describe(size)} and stride {_describe(stride)}: "
                         f"not integers in 0..{INDEX_LIMIT} (with one size and one stride a dimension)")
    elements = math.prod(size)
    end = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if elements else offset
    if end > storage.numel:
        raise ValueError(f"offset {offset}, size {_describe(size)} and stride {_describe(stride)} need {end} "
                         f"elements of its storage {entry}, which holds {storage.numel}")
    if elements > storage.numel:
        raise ValueError(f"size {_describe(size)} holds {elements} elements, more than its storage {entry} "
                         f"({storage.numel}): a stride-0 view")
    return info


def _array(tensor, data):
    """The tensor record as a new array over its storage's bytes `data` (checked by `_storage_entry`)."""
    itemsize = tensor.storage.dtype.itemsize
    return np.ndarray(tensor.size, tensor.storage.dtype, buffer=data, offset=tensor.offset * itemsize,
                      strides=tuple(s * itemsize for s in tensor.stride)).copy()


def _read_entry(archive, info):
    """An entry's bytes, as many as its header declares (`zipfile` inflates no more)."""
    with archive.open(info) as handle:
        data = handle.read()
    if len(data) != info.file_size:
        raise ValueError(f"{info.filename} holds {len(data)} bytes, its zip header declares {info.file_size}")
    return data


def _named(path, name, function, *args):
    """`function(*args)`; its ValueError or zip error raised again as a ValueError naming the file and tensor."""
    try:
        return function(*args)
    except (ValueError, *archives.ZIP_ERRORS) as error:
        raise ValueError(f"{path}: tensor {name!r}: {error}") from error


def read_torch_state_dict(path):
    """Reads a state dict saved by `torch.save` (zip format, torch >= 1.6) as {name: numpy array}.

    Made for files from others: the pickle may only build tensors (nothing else is
    imported or run), every tensor's offset, size and stride are checked against its
    storage before a view of it is made, and no zip entry is read before its
    declared size is checked against its tensors and the file's size
    (`CHECKPOINT_INFLATION`). Each storage is read once, when its tensors are built.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: the file is not a zip-format torch checkpoint of tensors, or a record in it does not fit
            its storage (names the file, and the tensor's key).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ffe_weights: no file {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a zip-format torch checkpoint (re-save it with torch.save in torch >= 1.6)")
    try:
        with zipfile.ZipFile(path) as archive:
            return _read_state_dict(path, archive)
    except archives.ZIP_ERRORS as error:
        raise ValueError(f"{path}: unreadable zip: {error}") from error


def _read_state_dict(path, archive):
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise ValueError(f"{path}: expected one <name>/data.pkl in the zip, found {pickles[:5]}")
    root = pickles[0][: -len("data.pkl")]
    heads = [archive.getinfo(n) for n in (pickles[0], f"{root}byteorder") if n in names]
    sizes = {info.filename: info.file_size for info in heads}
    archives.check_inflation(path, sizes, CHECKPOINT_INFLATION)
    if len(heads) == 2 and archive.read(heads[1]).strip() != b"little":
        raise ValueError(f"{path}: big-endian checkpoints are not supported")
    with archive.open(heads[0]) as handle:
        try:
            state = _TorchUnpickler(handle).load()
        except Exception as error:  # whatever a crafted pickle stream makes the unpickler raise
            raise ValueError(f"{path}: cannot read it as a torch state dict: {error}") from error
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict {{name: tensor}}, got {type(state).__name__}")
    for name, value in state.items():
        if not (isinstance(name, str) and isinstance(value, _Tensor)):
            raise ValueError(f"{path}: expected a state dict {{name: tensor}}; {_describe(name)} holds a "
                             f"{type(value).__name__}")
    entries = {name: _named(path, name, _storage_entry, tensor, archive, root) for name, tensor in state.items()}
    for name, info in entries.items():
        sizes[info.filename] = info.file_size
        sizes[f"tensor {name}"] = math.prod(state[name].size) * state[name].storage.dtype.itemsize
    archives.check_inflation(path, sizes, CHECKPOINT_INFLATION)
    storages, arrays = {}, {}
    for name, info in entries.items():
        if info.filename not in storages:
            storages[info.filename] = _named(path, name, _read_entry, archive, info)
        arrays[name] = _named(path, name, _array, state[name], storages[info.filename])
    return arrays


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


def check_ffe_weights(ffe_weights):
    """Reads a `ffe_weights` file before a run starts: a missing or refused file stops it at once.

    None and "imagenet" (downloaded and checksum-verified when a model is built) are not read.

    Raises:
        FileNotFoundError: no file at the path.
        ValueError: a torchvision checkpoint that `read_torch_state_dict` refuses.
    """
    if ffe_weights in (None, "imagenet"):
        return
    if weights_kind(ffe_weights) == "torchvision":
        read_torch_state_dict(ffe_weights)
    elif not pathlib.Path(ffe_weights).is_file():
        raise FileNotFoundError(f"ffe_weights: no file {ffe_weights}")


def load_ffe_weights(ffe, ffe_weights):
    """Loads `ffe_weights` ("imagenet", a torchvision `.pth` or our `.weights.h5`) into a built FFE."""
    kind = weights_kind(ffe_weights)
    if kind == "keras":
        check_ffe_weights(ffe_weights)
        keras.saving.load_weights(ffe, str(ffe_weights))
        return
    check_resnet18(ffe_weights, ffe.width, ffe.blocks)
    if ffe_weights == "imagenet":
        from cmnet_keras.assets import resnet18_imagenet_path

        ffe_weights = resnet18_imagenet_path()
    load_torchvision_weights(ffe, read_torch_state_dict(ffe_weights), source=str(ffe_weights))
