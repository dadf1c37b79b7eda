"""Leave-One-Subject-Out folds over a preprocessed clip cache."""

import dataclasses
import re

import numpy as np
import pandas as pd


HOLD_OUT = ("subject", "dataset")


@dataclasses.dataclass
class LOSOFold:
    """One LOSO fold: every clip of `subject` is held out for testing (with `hold_out="dataset"`,
    `subject` is a dataset of a composite cache, all of whose subjects are held out).

    `CMNet.fit(fold)` trains on `train` (validating on `validation`, drawn from
    training subjects only, or None); `CMNet.evaluate(fold)` tests on `test`;
    both first call `check_config` with the model's config. `epochs` is None
    where `train` is one pass over the training clips, reshuffled on every
    iteration, else the epoch numbers whose passes `train` holds in a row
    (`inputs.make_epochs_dataset`; None where the range is empty). The datasets are the
    backend's (`data.inputs`): tf.data under TensorFlow, a `PyDataset` under JAX and PyTorch.
    """

    subject: str
    train: object
    test: object
    validation: object = None
    train_index: pd.DataFrame = None
    test_index: pd.DataFrame = None
    validation_index: pd.DataFrame = None
    cache_dir: str = None
    epochs: range = None

    def check_config(self, config):
        """Raises `cache_fit.CacheMismatchError` unless `config`'s image size and frames are the cache's."""
        from cmnet_keras.data.cache_fit import check_config_fits

        if self.cache_dir is not None:
            check_config_fits(config, self.cache_dir)


def _natural_key(subject):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(subject))]


def fold_subjects(index, hold_out="subject"):
    """The fold order: unique values of the `hold_out` column of a cache index, sorted naturally.

    Fold i of `loso_folds` holds out `fold_subjects(index)[i]` ("sub2" before "sub10").
    `hold_out="dataset"` needs a composite's index (`cmnet_keras.data.composite`).
    """
    if hold_out not in HOLD_OUT:
        raise ValueError(f"hold_out must be one of {HOLD_OUT}, got {hold_out!r}")
    if hold_out not in index.columns:
        raise ValueError(f"hold_out={hold_out!r} needs a {hold_out!r} column in the cache index (a composite cache); "
                         f"it has {list(index.columns)}")
    return sorted({str(s) for s in index[hold_out]}, key=_natural_key)


def fold_seed(seed, fold_number, *extra):
    """A 31-bit seed derived from (seed, fold number, *extra), independent per fold."""
    return int(np.random.SeedSequence([int(seed), int(fold_number), *map(int, extra)]).generate_state(1)[0] >> 1)


def loso_folds(cache_dir, batch_size=8, seed=0, subjects=None, validation_subjects=0, hold_out="subject",
               config=None, epochs=None, min_batch=1):
    """One `LOSOFold` per subject of a preprocessed cache (an iterator; arguments are checked at once).

    The held-out subject's clips form `test` (in index order, unshuffled);
    every other subject trains. With `validation_subjects=K`, K training
    subjects (drawn per fold from `seed`, never a held-out one) are moved from
    `train` to `validation`. Folds are independent of which `subjects` are
    asked for, so folds split across machines equal those of one run.

    Args:
        cache_dir: a cache written by `cmnet_keras.preprocess` (or a composite).
        batch_size: clips per batch.
        seed: shuffles the training clips and draws validation subjects.
        subjects: subjects (or datasets) to hold out (default: all, in `fold_subjects` order).
        validation_subjects: number of training subjects used for validation.
        hold_out: "subject" (LOSO) or "dataset" (cross-dataset: a composite's
            datasets are held out one per fold; the others train).
        config: if given, a CMNetConfig checked against the cache at once (`cache_fit.check_config_fits`);
            `CMNet.fit(fold)` checks the model's config in any case.
        epochs: None (`train` is one pass, reshuffled by Keras's every epoch), or the epoch numbers
            `train` holds in a row, epoch e in the order of `fold_seed(seed, fold, 2, e)` alone, as
            `training.train_fold` trains (and resumes) a fold: a range, or a dict from each held-out
            subject to its range.
        min_batch: with `epochs`, an epoch's last batch of fewer clips is dropped (the replica count).
    """
    # Imported here: the dataclass above stays importable without Keras.
    from cmnet_keras.data.cache import read_index
    from cmnet_keras.data.inputs import make_dataset, make_epochs_dataset

    if config is not None:
        from cmnet_keras.data.cache_fit import check_config_fits

        check_config_fits(config, cache_dir)
    index = read_index(cache_dir)
    index = index.assign(subject=index["subject"].astype(str))
    order = fold_subjects(index, hold_out)
    if len(order) < 2:
        raise ValueError(f"holding out each {hold_out} needs at least 2 of them, {cache_dir} has {order}")
    wanted = order if subjects is None else [str(s) for s in subjects]
    unknown = [s for s in wanted if s not in order]
    if unknown:
        raise ValueError(f"{hold_out}s {unknown} are not in {cache_dir}; it has {order}")
    trainable = min(len(_training_subjects(index, hold_out, group)) for group in wanted) if wanted else len(order) - 1
    if not 0 <= validation_subjects <= trainable - 1:
        raise ValueError(
            f"validation_subjects must be in [0, {trainable - 1}] for {trainable} training "
            f"subjects per fold (at least one must train), got {validation_subjects}"
        )


    def training_data(number, group, train_index):
        """(train, epochs) of fold `number`, holding out `group`."""
        if epochs is None:
            return make_dataset(cache_dir, index=train_index, batch_size=batch_size, shuffle=True,
                                seed=fold_seed(seed, number)), None
        held = epochs[group] if isinstance(epochs, dict) else epochs
        seeds = [fold_seed(seed, number, 2, epoch) for epoch in held]
        return (make_epochs_dataset(cache_dir, train_index, batch_size, seeds, min_batch) if seeds else None), held

    return _folds(cache_dir, index, order, wanted, batch_size, seed, validation_subjects, hold_out, make_dataset,
                  training_data)


def _training_subjects(index, hold_out, group):
    """The subjects of the clips outside the held-out `group`, in `fold_subjects` order."""
    return fold_subjects(index[index[hold_out].astype(str) != group])


def _folds(cache_dir, index, order, wanted, batch_size, seed, validation_subjects, hold_out, make_dataset,
           training_data):
    for group in wanted:
        number = order.index(group)
        others = _training_subjects(index, hold_out, group)
        rng = np.random.default_rng(fold_seed(seed, number, 1))
        held = set(rng.choice(others, size=validation_subjects, replace=False).tolist())
        train_index = index[index["subject"].isin(set(others) - held)]
        test_index = index[index[hold_out].astype(str) == group]
        validation, validation_index = None, None
        if held:
            validation_index = index[index["subject"].isin(held)]
            validation = make_dataset(cache_dir, index=validation_index, batch_size=batch_size)
        train, epochs = training_data(number, group, train_index)
        yield LOSOFold(
            subject=group,
            train=train,
            test=make_dataset(cache_dir, index=test_index, batch_size=batch_size),
            validation=validation,
            train_index=train_index,
            test_index=test_index,
            validation_index=validation_index,
            cache_dir=str(cache_dir),
            epochs=epochs,
        )
