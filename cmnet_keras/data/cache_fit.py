"""Whether a config (a preset) fits a cache: the cache's meta.json records its image size and frame count.

The config is any object with `image_size`, `num_frames` and `presets_of_shape` (a `CMNetConfig`): the
data layer does not import the config module.
"""


class CacheMismatchError(ValueError):
    """A config's image size or frame count is not the cache's; the message names both and the way out."""


def cache_shape(meta):
    """(image_size, num_frames) of a cache's meta.json."""
    return int(meta["image_size"]), int(meta["num_frames"])


def check_config_fits(config, cache_dir, meta=None):
    """Raises CacheMismatchError unless `config` reads the clips of `cache_dir` as they are.

    Args:
        config: a CMNetConfig.
        cache_dir: a preprocessed cache (or composite) folder.
        meta: its meta.json, if already read (default: read it).

    Returns:
        the cache's meta.json as a dict.
    """
    from cmnet_keras.data.cache import read_meta

    meta = read_meta(cache_dir) if meta is None else meta
    size, frames = cache_shape(meta)
    if (config.image_size, config.num_frames) == (size, frames):
        return meta
    wanted = config.presets_of_shape(config.image_size, config.num_frames)
    fits = config.presets_of_shape(size, frames)
    needs = f"{config.num_frames} frames of {config.image_size} px" + (f" (preset {'/'.join(wanted)})" if wanted else "")
    choice = f"use --preset {' or '.join(fits)}" if fits else "no preset fits it"
    dataset = "DATASET" if "composite" in meta else meta.get("dataset", "DATASET")  # a composite: each of its own
    raise CacheMismatchError(
        f"cache {cache_dir} holds {frames} frames of {size} px, the run needs {needs}: {choice}, or preprocess the "
        f"dataset at that size: python -m cmnet_keras.preprocess --dataset {dataset} --root DATASET_FOLDER "
        f"--size {config.image_size} --frames {config.num_frames} --out NEW_CACHE")
