"""Why k stays flat: per epoch of one demo fold, the gradient each loss term sends to the squeeze layer.

Trains fold 0 of the embedded dataset (the demo preset, or `--tendency
calibrated`) one epoch at a time; after each epoch, on a fixed probe of the
fold's first training batches (training mode, as a step sees them), records
for each term of eq. 10 separately (L_ID, L_Wrst, L_C) the norm of its
gradient reaching the squeeze layer's kernel and bias, raw and times its
lambda (what the optimizer receives), the term's value, and k over the frames
of the probe clips in inference mode (mean, and the mean over clips of k's
range max - min); also each term's gradient norm at the ICE's output projection
(L_ID reaches the ICE without passing the squeeze). Only training clips are used. TensorFlow only (tf.GradientTape).

    PYTHONPATH=.:bench python bench/tendency_gradients.py --data-dir data --out runs/gradients.json
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402
from profile_step import machine  # noqa: E402

from cmnet_keras.config import TENDENCY, get_config  # noqa: E402
from cmnet_keras.files import write_json  # noqa: E402

TERMS = ("id_loss", "wrst_loss", "ce_loss")


def term_values(model, x, y):
    """The three per-batch terms of eq. 10 (means over the clips) of one training-mode forward pass."""
    y_pred = model(x, training=True)
    zero = ops.zeros(())
    return {
        "id_loss": ops.mean(model.id_loss_fn(y, (*y_pred["views"], y_pred["negatives"]))) if "views" in y_pred
        else zero,
        "wrst_loss": ops.mean(model.wrst_loss_fn(y_pred["prototype"], y_pred["intensity"])) if "prototype" in y_pred
        else zero,
        "ce_loss": ops.mean(model.ce_loss_fn(y, y_pred["probs"])),
    }


def _norm(grads):
    grads = [g for g in grads if g is not None]
    return float(np.sqrt(sum(float(tf.reduce_sum(g * g)) for g in grads))) if grads else 0.0


def probe(model, batches):
    """Per term: value and gradient norm at the squeeze weights (and at the ICE's output projection,
    which L_ID reaches without passing the squeeze); k's mean and range in inference."""
    squeeze = [model.squeeze.kernel, model.squeeze.bias]
    lambdas = dict(zip(TERMS, model.config.lambdas))
    record = {f"{t}_{q}": 0.0 for t in TERMS for q in ("value", "grad", "weighted_grad", "ice_grad")}
    ranges, means = [], []
    for x, y in batches:
        with tf.GradientTape(persistent=True) as tape:
            values = term_values(model, x, y)
        for term, value in values.items():
            norm = _norm(tape.gradient(value, squeeze))
            record[f"{term}_value"] += float(value) / len(batches)
            record[f"{term}_grad"] += norm / len(batches)
            record[f"{term}_weighted_grad"] += lambdas[term] * norm / len(batches)
            record[f"{term}_ice_grad"] += _norm(tape.gradient(value, model.ice.project.trainable_weights)) / len(batches)
        del tape
        k = ops.convert_to_numpy(model(x, training=False)["intensity"])
        ranges.extend(np.ptp(k, axis=1))
        means.append(k.mean())
    return {**record, "k_mean": float(np.mean(means)), "k_range": float(np.mean(ranges))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--tendency", choices=sorted(TENDENCY), default="paper")
    parser.add_argument("--epochs", type=int, help="default: the demo preset's")
    parser.add_argument("--probe-batches", type=int, default=4)
    parser.add_argument("--out", help="JSON file for the records")
    args = parser.parse_args(argv)
    from cmnet_keras.embedded_cache import ensure_embedded_cache
    from cmnet_keras.data.folds import loso_folds
    from cmnet_keras.models import build_cmnet
    from cmnet_keras.training import loso

    config = get_config("demo", **TENDENCY[args.tendency], **({} if args.epochs is None else {"epochs": args.epochs}))
    cache_dir = ensure_embedded_cache(config.image_size, config.num_frames, args.data_dir)
    config = loso.config_for_cache(config, cache_dir)
    fold = next(loso_folds(cache_dir, batch_size=config.batch_size, seed=config.seed))
    batches = list(fold.train.take(args.probe_batches))
    steps = -(-len(fold.train_index) // config.batch_size)
    loso.seed_python(0)
    tf.random.set_seed(0)
    model = build_cmnet(config, steps_per_epoch=steps)
    records = [{"epoch": 0, **probe(model, batches)}]
    print(f"machine: {machine()}\n{args.tendency}: fold 0 (test subject {fold.subject} never read), "
          f"{len(fold.train_index)} training clips, probe {args.probe_batches} batches", flush=True)
    header = "epoch  " + "  ".join(f"{t:>9s} |g|sq lam|g|sq |g|ice" for t in TERMS) + "  k_mean k_range"
    print(header)

    def line(r):
        return (f"{r['epoch']:5d}  " + "  ".join(f"{r[f'{t}_value']:9.4f} {r[f'{t}_grad']:.1e} "
                                                  f"{r[f'{t}_weighted_grad']:.1e} {r[f'{t}_ice_grad']:.1e}"
                                                  for t in TERMS)
                + f"  {r['k_mean']:6.3f} {r['k_range']:7.4f}")

    print(line(records[0]), flush=True)
    for epoch in range(config.epochs):
        model.fit(fold.train, initial_epoch=epoch, epochs=epoch + 1, steps_per_epoch=steps, verbose=0, shuffle=False)
        records.append({"epoch": epoch + 1, **probe(model, batches)})
        print(line(records[-1]), flush=True)
        if args.out:  # after every epoch: a stopped run keeps what it measured
            write_json(args.out, {"machine": machine(), "tendency": args.tendency, "config": config.to_dict(),
                                  "records": records})


if __name__ == "__main__":
    main()
