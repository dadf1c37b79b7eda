"""The typed records of a LOSO run: its options, a fold's result and the run's result.

The training loop (`cmnet_keras.training`) returns them, `cmnet_keras.reports`
writes them, merge, seeds, ablation and the λ search read them. On disk they
are the JSON objects of `result.json` (a fold) and `results.json` (a run),
unchanged: `to_json` gives that object, `from_json` reads it back, also from
files written before a field was added (a missing field is None).
This module imports nothing of the package.
"""

import dataclasses

# Per-fold scores of the paper protocol (`metrics.fold_scores`), then the tendency of k (`metrics.tendency_summary`).
FOLD_SCORES = ("n", "accuracy", "precision", "recall", "f1", "f1_all")
FOLD_TENDENCY = ("rho", "abs_z")
# A fold's truth scores (`metrics.truth_summary`, without its "n") are the keys with these prefixes.
TRUTH_PREFIXES = ("rho_true_", "amplitude_")
EVALUATE_ON = ("test", "validation")
CLASS_WEIGHTS = (None, "balanced")
MIXED_PRECISIONS = (None, "float16", "bfloat16")  # None: float32
# The protocols and scores of a run's summary (`reports.summarize`), in results.json beside the fold rows.
RUN_SCORES = ("paper", "pooled", "tendency", "truth", "per_dataset")


def _known(cls):
    return [f.name for f in dataclasses.fields(cls)]


def fold_row_fields(truth_fields=()):
    """The columns of a fold's row in results.json and folds.csv, with a run's `truth_fields`."""
    return ["fold", "subject", *FOLD_SCORES, *FOLD_TENDENCY, *truth_fields, "epochs", "train_seconds"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How a LOSO run trains and what it holds out, besides the model's config (`training.run_loso`).

    Raises ValueError naming the field and its value for a value outside those listed.

    Attributes:
        folds: fold numbers to run (None: all), see `training.parse_folds`.
        hold_out: "subject" (LOSO) or "dataset" (cross-dataset), see `data.folds.loso_folds`.
        validation_subjects: training subjects per fold held out for validation curves.
        evaluate_on: "test" (the held-out subject) or "validation" (the tuner's nested objective).
        class_weight: None or "balanced" (`training.loso.balanced_class_weight`).
        strategy: a name of `distribute.STRATEGIES`.
        mixed_precision: None (float32), "float16" or "bfloat16".
        checkpoint_every: epochs between fold checkpoints (resume points).
        verbose: Keras progress bar mode (0 silent, 1 bar, 2 one line per epoch).
        command: the command line recorded in config.json.
    """

    folds: list | None = None
    hold_out: str = "subject"
    validation_subjects: int = 0
    evaluate_on: str = "test"
    class_weight: str | None = None
    strategy: str = "none"
    mixed_precision: str | None = None
    checkpoint_every: int = 5
    verbose: int = 1
    command: list | None = None

    def __post_init__(self):
        for name, allowed in (("evaluate_on", EVALUATE_ON), ("class_weight", CLASS_WEIGHTS),
                              ("mixed_precision", MIXED_PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.evaluate_on == "validation" and self.validation_subjects < 1:
            raise ValueError(f"evaluate_on='validation' needs validation_subjects >= 1, got {self.validation_subjects}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")

    def replace(self, **changes):
        """A copy with `changes` (field names) applied."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True, kw_only=True)
class FoldResult:
    """One finished fold: its scores on the clips it was tested on, its training and its predictions.

    Attributes:
        fold: the fold number; subject: what it held out (a subject, or a dataset).
        n, accuracy, precision, recall, f1, f1_all: `metrics.fold_scores` of its test clips.
        rho, abs_z: `metrics.tendency_summary` of its test clips.
        truth: `metrics.truth_summary` of its test clips without "n" ({} where none has a true intensity).
        epochs: epochs trained; train_seconds: their time.
        train_subjects: the subjects it trained on.
        eta: the intensity prototype's learned eta.
        class_weight: {class: weight} of L_C, or None (unweighted).
        history: the Keras history of its training.
        predictions: one dict per test clip (`training.predict_fold`).
    A fold read from a results.json row has only the row's fields (the others are empty).
    """

    fold: int
    subject: str
    n: int | None = None
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    f1_all: float | None = None
    rho: float | None = None
    abs_z: float | None = None
    truth: dict = dataclasses.field(default_factory=dict)
    epochs: int | None = None
    train_seconds: float | None = None
    train_subjects: list = dataclasses.field(default_factory=list)
    eta: list | None = None
    class_weight: dict | None = None
    history: dict = dataclasses.field(default_factory=dict)
    predictions: list = dataclasses.field(default_factory=list)

    def to_json(self):
        """The JSON object of its result.json."""
        fields = {name: getattr(self, name) for name in _known(FoldResult) if name != "truth"}
        weights = None if self.class_weight is None else {str(c): w for c, w in self.class_weight.items()}
        return {**fields, **self.truth, "class_weight": weights}

    def row(self, truth_fields=()):
        """Its row of results.json's "folds" and of folds.csv with the run's `truth_fields` (None where it has none)."""
        return {k: self.truth.get(k) if k in truth_fields else getattr(self, k) for k in fold_row_fields(truth_fields)}

    @classmethod
    def from_json(cls, data):
        """The fold of a result.json object or of a results.json row; other keys are ignored."""
        if not isinstance(data, dict) or "fold" not in data or "subject" not in data:
            raise ValueError(f"a fold result needs a JSON object with fold and subject, got {str(data)[:80]}")
        fields = {k: data[k] for k in _known(cls) if k in data and k not in ("truth", "class_weight")}
        weights = data.get("class_weight")
        return cls(**fields, truth={k: v for k, v in data.items() if k.startswith(TRUTH_PREFIXES)},
                   class_weight=None if weights is None else {int(c): w for c, w in weights.items()})


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunResult:
    """The final results of a (possibly partial) run over its finished folds (`reports.summarize_run`).

    Attributes:
        paper, pooled, tendency: `metrics.paper_protocol`, `metrics.pooled_protocol`, `metrics.tendency_summary`.
        truth: `metrics.truth_summary` over every clip ({} where none has a true intensity).
        per_dataset: {dataset: {"paper", "pooled"}} of a composite's clips ({} on one dataset).
        class_names: names of the label ids.
        complete: whether every expected fold is finished; missing_subjects: those that are not.
        folds: the finished folds (`FoldResult`), by fold number.
        confusion_matrix: rows true, columns predicted, over every test clip.
        notes: what else results.json holds (the lambdas of a loss ablation, a composite's summary, ...).
    """

    paper: dict
    pooled: dict
    tendency: dict
    truth: dict = dataclasses.field(default_factory=dict)
    per_dataset: dict = dataclasses.field(default_factory=dict)
    class_names: list = dataclasses.field(default_factory=list)
    complete: bool = False
    missing_subjects: list = dataclasses.field(default_factory=list)
    folds: list = dataclasses.field(default_factory=list)
    confusion_matrix: list = dataclasses.field(default_factory=list)
    notes: dict = dataclasses.field(default_factory=dict)

    @property
    def truth_fields(self):
        """The truth scores of the fold rows: those of the run's `truth` but its "n"."""
        return [k for k in self.truth if k != "n"]

    def scores(self):
        """{protocol: scores} of `RUN_SCORES` that the run has."""
        return {name: getattr(self, name) for name in RUN_SCORES if getattr(self, name)}

    def to_json(self):
        """The JSON object of its results.json."""
        return {**self.scores(), "class_names": list(self.class_names), "complete": self.complete,
                "missing_subjects": list(self.missing_subjects),
                "folds": [fold.row(self.truth_fields) for fold in self.folds],
                "confusion_matrix": self.confusion_matrix, **self.notes}

    @classmethod
    def from_json(cls, data):
        """The run of a results.json object: the keys besides the fields are its notes."""
        missing = [k for k in ("paper", "pooled", "tendency") if k not in data]
        if missing:
            raise ValueError(f"a run result needs {missing} in its JSON object, got keys {sorted(data)}")
        names = _known(cls)
        fields = {k: data[k] for k in names if k in data and k not in ("folds", "notes")}
        return cls(**fields, folds=[FoldResult.from_json(row) for row in data.get("folds", [])],
                   notes={k: v for k, v in data.items() if k not in names})
