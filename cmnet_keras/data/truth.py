"""Ground-truth intensity: a clip's true expression intensity over its frames, where a dataset has one.

No released micro-expression dataset annotates intensity per frame; the embedded
dataset does (`embedded_manifest.csv`: every clip's onset, apex, offset and
amplitude), and so may any dataset with a truth file in the same form:

    subject, filename, onset, apex, offset, amplitude

one row per clip (frame numbers as in the sheet; `filename` the clip id;
`amplitude` the peak movement, e.g. in face widths; the embedded manifest's
`amplitude_fw` column is read when there is no `amplitude`). The curve is the
embedded generator's: a raised cosine from 0 at the onset to the amplitude at
the apex and back to 0 at the offset (`raised_cosine`). Preprocessing resamples
it with the clip's own temporal plan (`TemporalPlan.resample`: the same frames
and blending as the images) and stores the N values with the clip; clips
without a row have none.
"""

import dataclasses
import pathlib

import numpy as np
import pandas as pd

from cmnet_keras.data.readers import match_subject

TRUTH_COLUMNS = ("subject", "filename", "onset", "apex", "offset")
AMPLITUDE_COLUMNS = ("amplitude", "amplitude_fw")


def raised_cosine(length, apex):
    """Intensity per frame: 0 at the first frame, 1 at `apex`, 0 at the last."""
    t = np.arange(length, dtype=np.float64)
    rise = 0.5 - 0.5 * np.cos(np.pi * t / max(apex, 1))
    fall = 0.5 + 0.5 * np.cos(np.pi * (t - apex) / max(length - 1 - apex, 1))
    return np.where(t <= apex, rise, fall)


@dataclasses.dataclass(frozen=True)
class ClipTruth:
    """One clip's true intensity: raised cosine onset -> apex -> offset (frame numbers), peak `amplitude`."""

    onset: int
    apex: int
    offset: int
    amplitude: float
    source: str = ""

    @property
    def length(self):
        return self.offset - self.onset + 1

    def curve(self):
        """The true intensity of each source frame onset..offset, [length] float64."""
        return self.amplitude * raised_cosine(self.length, self.apex - self.onset)

    def as_dict(self):
        """The values that define the curve (a clip's provenance)."""
        return {"onset": self.onset, "apex": self.apex, "offset": self.offset, "amplitude": self.amplitude}


def _integer(value, column, source):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number) or not number.is_integer():
        raise ValueError(f"{source}: {column} must be a frame number, got {value!r}")
    return int(number)


def read_truth_table(path):
    """Reads a truth file: {(subject, clip id): ClipTruth}, subject and clip id as text.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a missing column or a bad row (names the file and row).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"intensity truth file not found: {path}")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    amplitude = next((c for c in AMPLITUDE_COLUMNS if c in table.columns), None)
    missing = [c for c in TRUTH_COLUMNS if c not in table.columns] + ([] if amplitude else ["amplitude"])
    if missing:
        raise ValueError(f"{path}: intensity truth file lacks columns {missing} (has {list(table.columns)})")
    truths = {}
    for row_number, row in enumerate(table.to_dict("records"), start=2):
        source = f"{path.name} row {row_number}"
        onset, apex, offset = (_integer(row[c], c, source) for c in ("onset", "apex", "offset"))
        if not onset <= apex <= offset:
            raise ValueError(f"{source}: needs onset <= apex <= offset, got {onset}, {apex}, {offset}")
        try:
            value = float(row[amplitude])
        except ValueError:
            value = float("nan")
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{source}: {amplitude} must be a number >= 0, got {row[amplitude]!r}")
        key = (row["subject"].strip(), row["filename"].strip())
        if key in truths:
            raise ValueError(f"{source}: a second row for subject {key[0]!r}, clip {key[1]!r}")
        truths[key] = ClipTruth(onset, apex, offset, value, source)
    return truths


def attach_truth(spec, truths):
    """Sets `clip.truth` on the clips of `spec` that have a row in `truths` (subjects matched as sheets are).

    Args:
        spec: a `readers.DatasetSpec`.
        truths: `read_truth_table`'s dict.

    Returns:
        (number of clips given a truth, messages for rows whose clip spans another number of frames).
    """
    clips = {(c.subject, c.clip_id): c for c in spec.clips}
    subjects = {c.subject for c in spec.clips}
    attached, problems = 0, []
    for (subject, clip_id), truth in truths.items():
        clip = clips.get((match_subject(subject, subjects), clip_id))
        if clip is None:
            continue
        if truth.length != clip.length:
            problems.append(f"{truth.source}: onset..offset {truth.onset}..{truth.offset} spans {truth.length} "
                            f"frames, clip {clip.name} {clip.length}: no truth stored for it")
            continue
        clip.truth = truth
        attached += 1
    return attached, problems
