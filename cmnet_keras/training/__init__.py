"""Training and evaluation: LOSO fold loop, run directories, ablations, merging split runs."""

from cmnet_keras.training.loso import (
    config_for_cache,
    parse_folds,
    predict_fold,
    run_loso,
    train_final_model,
    train_fold,
)
from cmnet_keras.training.run_dir import ConfigMismatchError, RunDirError
