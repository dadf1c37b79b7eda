"""CMNet (Wei et al., AAAI 2023): contrastive magnification network, Fig. 1."""

import dataclasses

import keras
import numpy as np
from keras import ops

from cmnet_keras.config import CMNetConfig
from cmnet_keras.layers import (
    ClipFlip,
    Extend,
    FacialFeatureEncoder,
    IntensityCluesEncoder,
    IntensityPrototype,
    NegativeSampler,
    Squeeze,
    ViewAugmentation,
    gather_negatives,
)
from cmnet_keras.losses import ClassificationLoss, IntensityDistillationLoss, TendencyLoss, TotalLoss
from cmnet_keras.optimizers import default_optimizer
from cmnet_keras.pretrained import load_ffe_weights

CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(CMNetConfig))
FOLD_PARTS = ("train", "test", "validation")


def onset_difference(frames):
    """Each frame's change from the clip's first (onset) frame, mid-grey where nothing moved.

    `(x_t - x_0 + 1) / 2` for frames [B, T, H, W, 3] in [0, 1]: the ICE input of
    `ice_input="difference"` (not in the paper), so k can read how far the face
    has moved, not what the face looks like.
    """
    return (frames - frames[:, :1] + 1.0) / 2.0


def _is_fold(x):
    """Whether `x` follows the fold protocol: `train`, `test` and `validation` attributes."""
    return all(hasattr(x, part) for part in FOLD_PARTS)


@keras.saving.register_keras_serializable(package="cmnet_keras")
class CMNet(keras.Model):
    """CMNet: ResNet-18 texture per frame, times intensity clues k, LSTM, softmax.

    Inputs: `{"frames": [B, T, H, W, 3] uint8 or float in 0..255, "apex": [B] int}`
    ("apex" is needed for training with lambda2 > 0, optional otherwise).
    Outputs: `{"probs": [B, C], "intensity": [B, T]}` (k per frame). In training
    the outputs also carry what `compute_loss` needs: "views" (z~1, z~2),
    "negatives" (features of the sampled other frames, reused from z, never
    re-encoded) and "prototype" (the sample q).

    Training computes the ICE on the T frames and their two augmented views in one
    call (its batch statistics mix both); a term whose lambda is 0 is not computed.
    Inference runs only the FFE and the ICE on the T frames. `compute_loss` returns eq. 10
    (see there for sample weights) and updates the `id_loss`, `wrst_loss`, `ce_loss`
    trackers. In evaluation there are no views, so `val_id_loss` is 0, and L_Wrst uses
    the prototype mean instead of a sample.

    `fit(fold)` and `evaluate(fold)` also take a LOSO fold: any object with `train`,
    `test` and `validation` attributes (datasets of `(inputs, labels)` batches;
    `validation` may be None), such as `cmnet_keras.data.folds.LOSOFold`.

    Args:
        **kwargs: every `CMNetConfig` field (paper defaults) and `keras.Model`
            arguments (`name`, ...).
    """

    def __init__(self, **kwargs):
        config = CMNetConfig(**{k: kwargs.pop(k) for k in CONFIG_FIELDS if k in kwargs})
        super().__init__(**kwargs)
        self.config = config
        self.clip_flip = ClipFlip(config.clip_flip_rate, seed=config.seed + 3, name="clip_flip")
        self.augment = ViewAugmentation(
            config.jitter_strength,
            config.grayscale_rate,
            config.blur_sigma,
            jitter_rate=config.jitter_rate,
            blur_rate=config.blur_rate,
            seed=config.seed,
        )
        self.ffe = FacialFeatureEncoder(
            config.ffe_width, config.ffe_blocks, config.bn_momentum, config.sync_batchnorm,
            torchvision=config.ffe_weights is not None, name="ffe"
        )
        self.ice = IntensityCluesEncoder(
            config.ice_filters, config.ice_dim, config.bn_momentum, config.sync_batchnorm, name="ice"
        )
        self.squeeze = Squeeze(config.squeeze_bias_init, config.squeeze_kernel_init, name="squeeze")
        self.extend = Extend(self.ffe.output_dim, name="extend")
        self.sampler = NegativeSampler(config.sampler, config.num_negatives, config.tau, seed=config.seed + 1)
        self.prototype = IntensityPrototype(
            config.num_frames, config.epsilon, config.eta_init, seed=config.seed + 2, name="prototype"
        )
        self.prototype.trainable = self.uses_wrst_loss  # eta gets gradients from L_Wrst only
        # No cuDNN LSTM kernel takes bfloat16 (JAX on a GPU fails with it).
        bfloat16 = self.dtype_policy.compute_dtype == "bfloat16"
        self.lstm = keras.layers.LSTM(config.lstm_units, use_cudnn=False if bfloat16 else "auto", name="lstm")
        self.classifier = keras.layers.Dense(
            config.num_classes, activation="softmax", dtype="float32", name="classifier"
        )
        # Per-clip terms; TotalLoss reduces them (eq. 10).
        self.ce_loss_fn = ClassificationLoss(reduction="none")
        self.id_loss_fn = IntensityDistillationLoss(config.tau, reduction="none")
        self.wrst_loss_fn = TendencyLoss(
            config.tendency_loss, alpha=config.alpha, xi=config.xi, temperature=config.rank_temperature,
            p_mode=config.p_mode, temperature_mode=config.rank_temperature_mode, reduction="none",
        )
        self.total_loss_fn = TotalLoss(config.lambdas, sum_to_one=not config.lambda_ablation)
        self.id_loss_tracker = keras.metrics.Mean(name="id_loss")
        self.wrst_loss_tracker = keras.metrics.Mean(name="wrst_loss")
        self.ce_loss_tracker = keras.metrics.Mean(name="ce_loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def uses_id_loss(self):
        return self.config.lambdas[0] > 0

    @property
    def uses_wrst_loss(self):
        return self.config.lambdas[1] > 0

    def build(self, input_shape):
        frames = tuple(input_shape["frames"])  # checked on the way in (`__call__`)
        num_frames, ice_dim = self.config.num_frames, self.config.ice_dim
        self.ffe.build(frames)
        self.ice.build(frames)
        self.squeeze.build((None, num_frames, ice_dim))
        self.extend.build((None, num_frames))
        self.sampler.build((None, num_frames, ice_dim))
        self.prototype.build((None,))
        self.lstm.build((None, num_frames, self.ffe.output_dim))
        self.classifier.build((None, self.config.lstm_units))

    def _check_inputs(self, inputs):
        """Checks the structure and shapes of `inputs` (arrays or tensors) and the values of a numpy apex.

        The one input check, on the way in: `__call__` (every forward pass, the
        traced steps of `fit`, `evaluate` and `predict` too) and `_data` (arrays
        before Keras batches them, while their batch size and values are known).
        """
        if not isinstance(inputs, dict) or "frames" not in inputs:
            raise ValueError(
                "CMNet expects a dict {'frames': [B, T, H, W, 3], 'apex': [B]}, "
                f"got {type(inputs).__name__} {list(inputs) if isinstance(inputs, dict) else ''}"
            )
        shape = inputs["frames"]
        shape = tuple(getattr(shape, "shape", shape))
        if len(shape) != 5 or shape[1] != self.config.num_frames or shape[-1] != 3:
            raise ValueError(
                f"CMNet frames must be [B, {self.config.num_frames}, H, W, 3] "
                f"(num_frames={self.config.num_frames}), got shape {shape}"
            )
        apex = inputs.get("apex")
        if apex is not None:
            apex_shape = tuple(getattr(apex, "shape", apex))
            if len(apex_shape) != 1:
                raise ValueError(f"CMNet apex must be [B] (one index per clip), got shape {apex_shape}")
            if isinstance(apex, np.ndarray) and apex.size and (apex.min() < 0 or apex.max() >= shape[1]):
                raise ValueError(
                    f"CMNet apex must be in [0, {shape[1] - 1}], got {apex[(apex < 0) | (apex >= shape[1])].tolist()}"
                )

    def __call__(self, inputs, *args, **kwargs):
        self._check_inputs(inputs)  # before Keras turns numpy inputs into tensors
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, training=False):
        apex = inputs.get("apex")
        frames = ops.cast(inputs["frames"], self.compute_dtype) / 255.0
        frames = self.clip_flip(frames, training=training)
        texture = self.ffe(frames, training=training)  # [B, N, D]
        clues = frames if self.config.ice_input == "frame" else onset_difference(frames)
        outputs = {}
        if training and self.uses_id_loss:
            views = self.augment(ops.concatenate([clues, clues], axis=0), training=True)
            z, z1, z2 = ops.split(self.ice(ops.concatenate([clues, views], axis=0), training=True), 3, axis=0)
            outputs["views"] = (z1, z2)
            outputs["negatives"] = gather_negatives(z, self.sampler(z))
        else:
            z = self.ice(clues, training=training)
        k = self.squeeze(z)  # [B, N]
        if training and self.uses_wrst_loss:
            if apex is None:
                raise ValueError("CMNet needs inputs['apex'] for training with lambda2 > 0 (L_Wrst)")
            outputs["prototype"] = self.prototype(apex)
        enhanced = texture * self.extend(k)
        probs = self.classifier(self.lstm(enhanced, training=training))
        return {"probs": probs, "intensity": k, **outputs}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Total loss, eq. 10, from the terms of eqs. 1 and 9 and L_C, plus regularisation losses.

        `sample_weight` (and `fit`'s `class_weight`, which Keras turns into it)
        weights each clip's L_C: the term is sum_i w_i L_C,i / B, the mean of Keras's
        losses ("sum_over_batch_size"). L_ID and L_Wrst stay unweighted means over
        the clips: they shape the intensity curve of every clip, whatever its class.
        The reduction, like every Keras loss's, divides by the replica count under
        tf.distribute; `self.losses` (weight regularisers, `add_loss`) are added as
        `keras.Model.compute_loss` adds them.
        """
        terms = {"ce_loss": self.ce_loss_fn(y, y_pred["probs"], sample_weight=sample_weight)}  # [B]
        terms["id_loss"] = terms["wrst_loss"] = ops.zeros_like(terms["ce_loss"])
        if "views" in y_pred:
            terms["id_loss"] = self.id_loss_fn(y, (*y_pred["views"], y_pred["negatives"]))
        q = y_pred.get("prototype")
        if q is None and self.uses_wrst_loss and isinstance(x, dict) and x.get("apex") is not None:
            q = self.prototype.prototype_moments(x["apex"])[0]
        if q is not None:
            terms["wrst_loss"] = self.wrst_loss_fn(q, y_pred["intensity"])
        for tracker in (self.id_loss_tracker, self.wrst_loss_tracker, self.ce_loss_tracker):
            tracker.update_state(terms[tracker.name])
        total = self.total_loss_fn(y, terms)
        if self.losses:
            total = total + super().compute_loss(x, y, y_pred, sample_weight, training)
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.accuracy_tracker.update_state(y, y_pred["probs"], sample_weight=sample_weight)
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def intensity_prototype(self, apex):
        """Prototype means [B, T] (eqs. 2-4) for apex indices [B], e.g. to plot Fig. 5."""
        return self.prototype.prototype_moments(apex)[0]

    def _data(self, x, part=None):
        """What `fit` (`part="train"`), `evaluate` (`"test"`) or `predict` reads: the fold's part where `x`
        is a fold (its `check_config(config)` called where it has one: a cache's fold checks its image size),
        else `x`, checked (`_check_inputs`) where it is a dict of arrays."""
        if part is not None and _is_fold(x):
            check = getattr(x, "check_config", None)
            if check is not None:
                check(self.config)
            return getattr(x, part)
        if isinstance(x, dict):
            self._check_inputs(x)
        return x

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`; `x` may be a LOSO fold (trains on `fold.train`,
        validates on `fold.validation` unless `validation_data` is given)."""
        if _is_fold(x) and kwargs.get("validation_data") is None:
            kwargs["validation_data"] = x.validation
        return super().fit(self._data(x, "train"), y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`; `x` may be a LOSO fold (tests on `fold.test`)."""
        return super().evaluate(self._data(x, "test"), y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        return super().predict(self._data(x), *args, **kwargs)

    def get_config(self):
        return {**super().get_config(), **self.config.to_dict()}


def build_cmnet(config, steps_per_epoch=None, compile=True):
    """Creates a `CMNet` from `config`, builds its weights, loads `config.ffe_weights` and compiles it.

    Compiles with `default_optimizer` and `jit_compile=False` (XLA costs 25-40%
    on CPU under TF); under JAX, where the alternative to XLA is op-by-op
    execution, with `jit_compile=True`.

    Args:
        config: a `CMNetConfig`.
        steps_per_epoch: for the halving lr schedule of `default_optimizer` (None = constant lr).
        compile: whether to compile.
    """
    model = CMNet(**config.to_dict())
    size = config.image_size
    model.build({"frames": (None, config.num_frames, size, size, 3), "apex": (None,)})
    if config.ffe_weights is not None:
        load_ffe_weights(model.ffe, config.ffe_weights)
    if compile:
        model.compile(
            optimizer=default_optimizer(config, steps_per_epoch),
            jit_compile=keras.backend.backend() == "jax",
        )
        # Built here, not lazily inside the first traced train step, where creating
        # its variables makes TF trace the whole step twice.
        model.optimizer.build(model.trainable_variables)
    return model
