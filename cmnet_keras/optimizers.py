"""The paper's optimiser: SGD, momentum 0.9, weight decay 1e-4, lr halved every 50 epochs."""

import keras


def default_optimizer(config, steps_per_epoch=None):
    """SGD with the config's momentum and weight decay (`config.optimizer="sgd"`,
    the paper), or AdamW with the config's weight decay (`"adamw"`).

    The learning rate starts at `config.learning_rate` and halves every
    `config.lr_halve_every_epochs` epochs (a staircase `ExponentialDecay`, which
    needs `steps_per_epoch`); without `steps_per_epoch` it stays constant.
    Keras applies weight decay decoupled from the gradient (w -= lr * wd * w).

    Args:
        config: a `CMNetConfig`.
        steps_per_epoch: optimizer steps per epoch, or None for a constant lr.
    """
    learning_rate = config.learning_rate
    if steps_per_epoch is not None:
        if int(steps_per_epoch) != steps_per_epoch or steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be an integer >= 1 or None, got {steps_per_epoch!r}")
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate,
            decay_steps=int(steps_per_epoch) * config.lr_halve_every_epochs,
            decay_rate=0.5,
            staircase=True,
        )
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=config.weight_decay)
    return keras.optimizers.SGD(
        learning_rate=learning_rate, momentum=config.momentum, weight_decay=config.weight_decay
    )
