"""CMNet configuration: one dataclass with the paper's values as defaults."""

import dataclasses
import json

import keras

from cmnet_keras.layers.negative_sampler import check_sampler
from cmnet_keras.losses.total import check_lambdas
from cmnet_keras.options import OPTIMIZERS, SAMPLERS
from cmnet_keras.losses.tendency import TENDENCY_LOSSES, check_tendency_loss
from cmnet_keras.losses.wilcoxon import P_MODES, TEMPERATURE_MODES, check_p_mode, check_temperature_mode
from cmnet_keras.pretrained import check_resnet18

__all__ = ["ICE_INPUTS", "OPTIMIZERS", "P_MODES", "PRESETS", "SAMPLERS", "TEMPERATURE_MODES", "TENDENCY",
           "TENDENCY_LOSSES", "CMNetConfig", "get_config"]

ICE_INPUTS = ("frame", "difference")


@dataclasses.dataclass
class CMNetConfig:
    """Every tunable value of CMNet, with the paper's choices as defaults.

    Values the paper leaves open follow `docs/design.md` (tau, eta init, ICE width,
    rank temperature, epochs, batch size).
    """

    num_classes: int = 5
    class_names: tuple = ("disgust", "happiness", "repression", "surprise", "others")
    num_frames: int = 16
    image_size: int = 224
    # Facial feature encoder (ResNet-18): stem width, blocks per stage.
    ffe_width: int = 64
    ffe_blocks: tuple = (2, 2, 2, 2)
    # FFE initialisation (not stated in the paper): None (from scratch), "imagenet" (torchvision's
    # ResNet-18), or a path (torchvision .pth, or .weights.h5 from `pretrained.save_ffe_weights`).
    # Any of them also turns on ImageNet mean/std input normalisation of the FFE.
    ffe_weights: str = None
    # Intensity clues encoder: conv filters per stage and output width.
    ice_filters: tuple = (32, 64, 128, 128)
    ice_dim: int = 128
    # BatchNormalization momentum of both encoders: 0.9 equals PyTorch's
    # default (0.1); Keras's 0.99 lags far behind the weights in short runs.
    bn_momentum: float = 0.9
    # BatchNormalization statistics over the global batch under tf.distribute
    # (TensorFlow only; a JAX data-parallel step already sees the global batch).
    # Off: each replica normalises with its own batch's statistics.
    sync_batchnorm: bool = False
    lstm_units: int = 256
    # Intensity distillation (eq. 1).
    sampler: str = "probabilistic"
    num_negatives: int = 15
    tau: float = 0.1
    # Prototype (eqs. 2-4) and rank-sum loss (eqs. 5-9).
    epsilon: float = 0.2
    eta_init: float = 0.5
    alpha: float = 0.05
    xi: float = 0.01
    rank_temperature: float = 0.01
    p_mode: str = "density"
    # Not in the paper: "absolute" (beta = rank_temperature, docs/design.md) or
    # "relative" (beta = rank_temperature x std of the ranked values, scale-free;
    # `losses.rank_temperature`).
    rank_temperature_mode: str = "absolute"
    # The lambda2 term: "rank_sum" (the paper's eqs. 5-9), "spearman" (1 - soft
    # Spearman rho(k, q), order-aware, not in the paper) or "both" (their sum).
    tendency_loss: str = "rank_sum"
    # Squeeze initialisation (not in the paper): today's is Keras's Dense default
    # (glorot kernel, bias 0), which starts k below the prototype's range
    # [epsilon, 1]; bias (1 + epsilon) / 2 with a "zeros" kernel starts k at the
    # middle of that range on every frame.
    squeeze_bias_init: float = 0.0
    squeeze_kernel_init: str = "glorot_uniform"
    # What the ICE sees (not in the paper): "frame" (the paper: each frame alone) or "difference"
    # (each frame's change from the clip's first, onset, frame; `models.cmnet.onset_difference`).
    ice_input: str = "frame"
    # Total loss (eq. 10).
    lambdas: tuple = (0.07, 0.71, 0.22)
    # Loss ablation as the paper's Table 3 runs it: a removed loss gets lambda 0 and the
    # others keep their weights, so the lambdas need not sum to 1. Only set for ablations.
    lambda_ablation: bool = False
    # View augmentation (SimCLR-style strengths and probabilities; all rates 0 = no augmentation).
    jitter_strength: float = 0.5
    jitter_rate: float = 0.8
    grayscale_rate: float = 0.2
    blur_rate: float = 0.5
    blur_sigma: tuple = (0.1, 2.0)
    # Not in the paper (off by default): probability of flipping a training clip
    # left-right, the same flip on all its frames (`layers.ClipFlip`).
    clip_flip_rate: float = 0.0
    # Optimisation: "sgd" (the paper: SGD + momentum) or "adamw" (`momentum` unused).
    optimizer: str = "sgd"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_halve_every_epochs: int = 50
    epochs: int = 100
    batch_size: int = 8
    seed: int = 0

    def __post_init__(self):
        self.class_names = tuple(self.class_names)
        self.ffe_blocks = tuple(self.ffe_blocks)
        self.ffe_weights = None if self.ffe_weights is None else str(self.ffe_weights)
        self.ice_filters = tuple(self.ice_filters)
        self.lambdas = tuple(float(v) for v in self.lambdas)
        self.blur_sigma = tuple(self.blur_sigma)
        self.validate()

    def validate(self):
        """Raises ValueError naming the first invalid field and its value."""
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"class_names has {len(self.class_names)} names but "
                f"num_classes={self.num_classes}: {self.class_names!r}"
            )
        if self.num_frames < 3:
            raise ValueError(f"num_frames must be >= 3, got {self.num_frames}")
        check_resnet18(self.ffe_weights, self.ffe_width, self.ffe_blocks)
        check_sampler(self.sampler)
        check_p_mode(self.p_mode)
        check_temperature_mode(self.rank_temperature_mode)
        check_tendency_loss(self.tendency_loss)
        try:
            keras.initializers.get(self.squeeze_kernel_init)
        except ValueError as error:
            raise ValueError(f"squeeze_kernel_init must name a Keras initializer, got {self.squeeze_kernel_init!r}") from error
        if self.ice_input not in ICE_INPUTS:
            raise ValueError(f"ice_input must be one of {ICE_INPUTS}, got {self.ice_input!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("clip_flip_rate", "jitter_rate", "grayscale_rate", "blur_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        check_lambdas(self.lambdas, sum_to_one=not self.lambda_ablation)
        if not 0.0 < self.epsilon < 1.0:
            raise ValueError(f"epsilon must be in (0, 1), got {self.epsilon}")
        if not 0.0 <= self.bn_momentum < 1.0:
            raise ValueError(f"bn_momentum must be in [0, 1), got {self.bn_momentum}")
        if not 0.0 < self.eta_init < 1.0:
            raise ValueError(f"eta_init must be in (0, 1), got {self.eta_init}")
        for name in ("tau", "rank_temperature", "learning_rate"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("num_negatives", "epochs", "batch_size", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def replace(self, **changes):
        """Returns a validated copy with `changes` applied."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"Unknown CMNetConfig fields: {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values):
        return cls(**values)

    @staticmethod
    def presets_of_shape(image_size, num_frames):
        """Names of the presets whose clips are `num_frames` frames of `image_size` px, sorted (a method, so
        that `data.cache_fit` names them from the config it is given without importing this module)."""
        return sorted(name for name in PRESETS
                      if (get_config(name).image_size, get_config(name).num_frames) == (image_size, num_frames))


# Tendency calibration settings (`--tendency`): "paper" is the paper's L_Wrst on the paper's ICE;
# "calibrated" is the variant that makes k follow the expression (docs/tendency.md).
TENDENCY = {
    "paper": dict(tendency_loss="rank_sum", rank_temperature_mode="absolute", rank_temperature=0.01,
                  squeeze_bias_init=0.0, squeeze_kernel_init="glorot_uniform", ice_input="frame"),
    "calibrated": dict(tendency_loss="both", squeeze_bias_init=(1 + CMNetConfig.epsilon) / 2,
                       squeeze_kernel_init="zeros", ice_input="difference"),
}

TENDENCY_NOTES = {
    "paper": "the paper's L_Wrst on the paper's ICE",
    "calibrated": "the ICE on each frame's change from the onset, rank-sum + soft Spearman loss; chosen on validation "
                  "subjects drawn from training subjects, docs/tendency.md",
    "custom": "tendency fields of neither setting",
}


def tendency_setting(config):
    """The name of the `TENDENCY` setting whose fields `config` has ("paper", "calibrated"), or "custom"."""
    for name, fields in TENDENCY.items():
        if all(getattr(config, field) == value for field, value in fields.items()):
            return name
    return "custom"


def describe_tendency(config):
    """The config's tendency setting and what it is, e.g. "calibrated (the ICE on each frame's change ...)"."""
    name = tendency_setting(config)
    return f"{name} ({TENDENCY_NOTES[name]})"


PRESETS = {
    # The paper: 224x224, ResNet-18 (64-wide stem), 16 frames, LSTM 256.
    "paper": {},
    # Unit tests: seconds per step on a CPU.
    "tiny": dict(
        image_size=32,
        ffe_width=4,
        ffe_blocks=(1, 1, 1, 1),
        ice_filters=(4, 8),
        ice_dim=8,
        lstm_units=8,
        epochs=2,
        batch_size=2,
    ),
    # The main job's demo on the embedded dataset: minutes on 2 CPU cores.
    "demo": dict(
        image_size=64,
        ffe_width=16,
        ffe_blocks=(2, 2, 2, 2),
        ice_filters=(16, 32, 64),
        ice_dim=32,
        lstm_units=64,
        # AdamW, not SGD, and no clip flips: chosen on validation subjects drawn from
        # the training subjects (bench/epoch_curves.py, docs/results.md).
        optimizer="adamw",
        learning_rate=1e-3,
        lr_halve_every_epochs=30,
        # 25, not 30: chosen on validation subjects drawn from the training subjects
        # (bench/epoch_curves.py: validation accuracy rises to epoch 25 and is flat to 30),
        # never on held-out subjects; it brings the main job under 10 minutes on 2 cores.
        epochs=25,
        batch_size=8,
        # The calibrated tendency, not the paper's L_Wrst: chosen on validation subjects drawn from
        # the training subjects (bench/tendency_variants.py: rho_true 0.96 against -0.02; docs/tendency.md).
        **TENDENCY["calibrated"],
    ),
}


def get_config(preset="paper", **overrides):
    """Builds a config from a named preset plus field overrides.

    Args:
        preset: one of `PRESETS` ("paper", "tiny", "demo").
        **overrides: CMNetConfig fields to change.
    """
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    return CMNetConfig(**{**PRESETS[preset], **overrides})
