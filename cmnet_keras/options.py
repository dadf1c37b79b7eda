"""The names the command lines offer as choices, importable without Keras, TensorFlow or OpenCV.

Each is defined here and imported by the library module that checks it, so a
command builds its parser (and answers `--help`) before anything heavy loads.
"""

# Model size presets (`config.PRESETS` holds their fields).
PRESET_NAMES = ("demo", "paper", "tiny")
# Tendency calibrations (`config.TENDENCY` holds their fields).
TENDENCY_NAMES = ("calibrated", "paper")
OPTIMIZERS = ("sgd", "adamw")
SAMPLERS = ("deterministic", "random", "probabilistic")  # negative samplers of L_ID (Table 2)
STRATEGIES = ("none", "mirrored", "mirrored-cpu", "multiworker")  # tf.distribute strategies
TABLES = ("sampler", "losses", "tendency")  # the ablation tables
DATASETS = ("casme2", "samm", "smic", "manifest")  # the dataset readers
SMIC_SUBSETS = ("HS", "NIR", "VIS")  # the cameras of SMIC; the paper uses HS
COMPOSITES = ("megc2019",)
CLIP_SETS = ("challenge", "table")  # the MEGC 2019 composite's clip lists
# The λ search's objectives (`tuning.search`), with what each scores.
OBJECTIVES = {
    "nested": "mean accuracy on validation subjects drawn from each outer fold's training subjects",
    "loso-test": "LOSO accuracy on the held-out test subjects: SELECTED ON THE TEST SUBJECTS (the paper's procedure)",
}
