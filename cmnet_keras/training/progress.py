"""Time estimates of a LOSO run, printed while it trains."""

import statistics
import time

import keras


def format_duration(seconds):
    """"4m05s" or "1h02m03s"."""
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m{seconds:02d}s" if minutes >= 60 else f"{minutes}m{seconds:02d}s"


class RunEstimate(keras.callbacks.Callback):
    """After the first epoch it sees, prints the measured step time and the training time left in the run.

    The step time is the median interval between the ends of consecutive
    steps, so the first step (graph tracing) is left out. The estimate assumes
    the same steps per epoch in every fold.

    Args:
        folds_after: folds of the run still to train after this one, for `epochs` epochs each.
        print_fn: where the line goes.
    """

    def __init__(self, folds_after, print_fn=print):
        super().__init__()
        self.folds_after = folds_after
        self.print_fn = print_fn
        self.step_ends = []
        self.printed = False

    def on_train_batch_end(self, batch, logs=None):
        self.step_ends.append(time.perf_counter())

    def on_epoch_end(self, epoch, logs=None):
        if self.printed or len(self.step_ends) < 2:
            return
        self.printed = True
        step = statistics.median(b - a for a, b in zip(self.step_ends, self.step_ends[1:]))
        steps, epochs = self.params["steps"], self.params["epochs"]
        left = steps * ((epochs - epoch - 1) + self.folds_after * epochs)
        self.print_fn(f"  {1000 * step:.0f} ms a step (median of epoch {epoch + 1}'s {len(self.step_ends)} steps): "
                      f"about {format_duration(left * step)} of training left in this run ({left} steps: "
                      f"{self.folds_after + 1} folds x {epochs} epochs x {steps} steps, this epoch done), "
                      "plus a few seconds a fold to set up and test")
