"""Dataset readers: CASME II, SAMM, SMIC-HS release layouts and a plain CSV manifest.

Every reader returns a `DatasetSpec`: the paper's class set, one `ClipSpec` per
kept clip, and a `DropSummary` counting the clips of other (or unknown, warned)
emotions per class and per subject, plus the rows that could not become clips
(missing folder, empty clip, a cell that is not a frame number), each named,
and the kept clips whose annotation was corrected (`notes`). Its summary says
which sheet (and worksheet, SMIC subset) was read and compares the kept
clips per class with the paper's counts.

Onset, apex and offset of a `ClipSpec` are 0-based positions in the clip's
frames (the folder's files sorted by frame number, or the video's frames).
A clip of a sheet dataset may be a video `<subject>/<clip_id>.mp4` (or .avi)
instead of a frame folder; its first frame is taken as the onset frame.
"""

import collections
import dataclasses
import pathlib
import re
import warnings

from cmnet_keras.data import media, sheets
from cmnet_keras.options import DATASETS, SMIC_SUBSETS

CLASS_SETS = {
    "casme2": ("disgust", "happiness", "repression", "surprise", "others"),
    "samm": ("anger", "contempt", "happiness", "surprise", "others"),
    "smic": ("negative", "positive", "surprise"),
}
# Emotions a release is known to contain besides its class set (dropped silently, but counted).
OTHER_EMOTIONS = {
    "casme2": ("sadness", "fear"),
    "samm": ("disgust", "fear", "sadness"),
    "smic": (),
}
EMOTION_ALIASES = {"other": "others", "happy": "happiness", "surprised": "surprise", "disgusted": "disgust"}
SEARCH_DEPTH = 2
# Clips per class in the paper (Sec. Experiments, Datasets); SMIC: its HS subset.
PAPER_COUNTS = {
    "casme2": {"disgust": 63, "happiness": 32, "repression": 27, "surprise": 25, "others": 99},
    "samm": {"anger": 57, "contempt": 12, "happiness": 26, "surprise": 15, "others": 26},
    "smic": {"negative": 70, "positive": 51, "surprise": 43},
}
# The clip of the CASME II sheet that the paper's 246 clips (happiness 32) leave out, and the evidence
# (docs/datasets.md, "Sheets, subsets and the paper's clip sets").
PAPER_LEFT_OUT = {
    "casme2": {("sub09", "EP02_02f"): "happiness, apex not annotated; the one happiness clip that the MEGC 2019 "
                                      "composite list and earlier works' 246-clip sets leave out"},
}


@dataclasses.dataclass
class ClipSpec:
    """One clip of a dataset.

    Attributes:
        dataset: reader name ("casme2", "samm", "smic", "manifest").
        subject: subject id as in the folders ("sub01", "006", "s1").
        clip_id: clip name ("EP02_01f").
        path: frame folder or video file.
        frame_files: the folder's frames sorted by frame number, or None for a video.
        label: index into the dataset's `class_names`.
        emotion: the class name.
        onset, apex, offset: 0-based positions in the clip's frames; apex None
            where not annotated (it is then estimated from motion).
        num_frames: frames in the folder or video.
        source: where the clip came from, for messages ("sheet.xlsx row 14").
        action_units: the sheet's action-unit cell as text ("4+L10", "12", "?"; "" if none).
        truth: the clip's true intensity (`truth.ClipTruth`), where a truth file gives one; else None.
    """

    dataset: str
    subject: str
    clip_id: str
    path: pathlib.Path
    frame_files: list
    label: int
    emotion: str
    onset: int
    apex: int
    offset: int
    num_frames: int
    source: str = ""
    action_units: str = ""
    truth: object = None

    @property
    def name(self):
        return f"{self.subject}/{self.clip_id}"

    @property
    def length(self):
        """Frames from onset to offset, both included."""
        return self.offset - self.onset + 1


@dataclasses.dataclass
class DropSummary:
    """Clips left out of a dataset: other emotions (per class, per subject), problems, the paper's exclusions."""

    by_class: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    by_subject: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    problems: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    paper_excluded: list = dataclasses.field(default_factory=list)

    @property
    def total(self):
        return sum(self.by_class.values())

    def drop(self, emotion, subject):
        self.by_class[emotion] += 1
        self.by_subject[subject] += 1

    def problem(self, message):
        """Records a row or folder that could not become a clip, and warns."""
        self.problems.append(message)
        warnings.warn(message, stacklevel=3)

    def note(self, message):
        """Records a kept clip whose annotation was corrected (e.g. its apex estimated), and warns."""
        self.notes.append(message)
        warnings.warn(message, stacklevel=3)


@dataclasses.dataclass
class DatasetSpec:
    """A dataset's class set, kept clips (`ClipSpec`), what was left out (`DropSummary`) and what was read.

    `info` and `paper` hold lines for the summary: the sheet (and worksheet)
    or folder read, and how the clips relate to the paper's set.
    """

    name: str
    class_names: tuple
    clips: list
    dropped: DropSummary
    info: list = dataclasses.field(default_factory=list)
    paper: list = dataclasses.field(default_factory=list)

    def summary(self):
        """Text: what was read, kept clips per class (against the paper's), dropped clips, problems."""
        kept = collections.Counter(c.emotion for c in self.clips)
        subjects = sorted({c.subject for c in self.clips}, key=_natural_key)
        lines = [f"{self.name}: {len(self.clips)} clips of {len(subjects)} subjects kept"]
        lines.extend(f"  {line}" for line in self.info)
        lines.append("  kept per class: " + ", ".join(f"{c} {kept[c]}" for c in self.class_names))
        paper = PAPER_COUNTS.get(self.name)
        if paper:
            differ = [f"{c} {kept[c]} here vs {paper[c]}" for c in paper if kept[c] != paper[c]]
            lines.append(f"  the paper's {sum(paper.values())} clips: "
                         + ", ".join(f"{c} {n}" for c, n in paper.items())
                         + ("; differs in " + ", ".join(differ) if differ else "; the same per class"))
        lines.extend(f"  {line}" for line in self.paper)
        if self.dropped.paper_excluded:
            lines.append(f"  left out to match the paper (--paper-clips): {len(self.dropped.paper_excluded)}")
            lines.extend(f"    {p}" for p in self.dropped.paper_excluded)
        if self.dropped.total:
            by_class = sorted(self.dropped.by_class.items(), key=lambda kv: (-kv[1], kv[0]))
            by_subject = sorted(self.dropped.by_subject.items(), key=lambda kv: _natural_key(kv[0]))
            lines.append(f"  dropped (other emotions): {self.dropped.total}")
            lines.append("    per class: " + ", ".join(f"{k} {v}" for k, v in by_class))
            lines.append("    per subject: " + ", ".join(f"{k} {v}" for k, v in by_subject))
        if self.dropped.problems:
            lines.append(f"  not usable: {len(self.dropped.problems)}")
            lines.extend(f"    {p}" for p in self.dropped.problems)
        if self.dropped.notes:
            lines.append(f"  kept with a correction: {len(self.dropped.notes)}")
            lines.extend(f"    {n}" for n in self.dropped.notes)
        return "\n".join(lines)


def class_set(name, all_emotions=False):
    """The classes a reader keeps: the paper's (`CLASS_SETS`), plus `OTHER_EMOTIONS` after them with `all_emotions`."""
    return CLASS_SETS[name] + (OTHER_EMOTIONS[name] if all_emotions else ())


def read_dataset(name, root, cropped=False, worksheet=None, paper_clips=False, smic_subset=None,
                 all_emotions=False):
    """Reads a dataset's clips and labels from its released layout.

    Args:
        name: "casme2", "samm", "smic" or "manifest".
        root: the dataset folder, or its annotation sheet (the frames are then
            found beside it; for "manifest": the CSV file or a folder holding it).
            Where a folder holds several candidate sheets, the first (by name,
            .xlsx before .csv) is read and the summary lists the others.
        cropped: use the release's cropped-face frames (CASME II `Cropped/`,
            SAMM's and SMIC's `*crop*` folders) instead of the raw ones.
        worksheet: the workbook's worksheet to read (default: the first with
            the required columns; the summary names it when there are several).
        paper_clips: CASME II only: leave out the clip the paper's 246 clips do
            not hold (`PAPER_LEFT_OUT`).
        smic_subset: SMIC only: "HS" (default, the paper's), "NIR" or "VIS",
            chosen by a path component of that name (case-insensitive).
        all_emotions: also keep the emotions the paper drops (`class_set`), e.g.
            SAMM's disgust, fear and sadness, which the MEGC 2019 composite counts as
            negative. SMIC has none (a note says so); an error for a manifest, which
            keeps every label of its CSV.

    Returns:
        DatasetSpec. Rows that cannot become clips are warned about (naming the
        file and row or folder) and listed in `dropped.problems`.
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {DATASETS}")
    if worksheet is not None and name == "smic":
        raise ValueError(f"A worksheet ({worksheet!r}, --sheet) is named only for datasets with a sheet, not {name}")
    if paper_clips and name not in PAPER_LEFT_OUT:
        raise ValueError(f"paper_clips (--paper-clips) applies to {sorted(PAPER_LEFT_OUT)} only, not {name}")
    if all_emotions and name == "manifest":
        raise ValueError("all_emotions (--all-emotions) applies to casme2 and samm (smic has no other emotions); a "
                         "manifest's classes are every label in its CSV already")
    if smic_subset is not None and (name != "smic" or smic_subset.upper() not in SMIC_SUBSETS):
        raise ValueError(f"smic_subset (--smic-subset) must be one of {SMIC_SUBSETS} with the smic dataset, "
                         f"got {smic_subset!r} for {name}")
    root = pathlib.Path(root)
    if not root.exists():
        raise FileNotFoundError(f"Dataset root not found: {root}")
    if name == "smic":
        if root.is_file():
            raise ValueError(f"SMIC has no annotation sheet: give its folder as the root, not the file {root}")
        spec = _read_smic(root, cropped, (smic_subset or SMIC_SUBSETS[0]).upper())
        if all_emotions:
            spec.info.append(f"--all-emotions: nothing to add, SMIC's classes {', '.join(spec.class_names)} are all "
                             "its emotions")
        return spec
    if name == "manifest":
        return _read_manifest(root, worksheet)
    return _read_sheet_dataset(name, root, cropped, worksheet, paper_clips, all_emotions)


def match_subject(value, folders):
    """Finds the folder of a sheet's subject id: exact name, else equal number (`1` <-> `sub01`, `6` <-> `006`)."""
    value = sheets.cell_text(value)
    if value in folders:
        return value
    digits = re.findall(r"\d+", value)
    if not digits:
        return None
    number = int(digits[-1])
    for folder in sorted(folders, key=_natural_key):
        folder_digits = re.findall(r"\d+", folder)
        if folder_digits and int(folder_digits[-1]) == number:
            return folder
    return None


def normalise_emotion(value):
    text = sheets.cell_text(value).lower()
    return EMOTION_ALIASES.get(text, text)


def _natural_key(text):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(text))]


def _path_words(parts):
    """Lower-case words of path components ("SMIC_all_raw/HS" -> {"smic", "all", "raw", "hs"})."""
    return {w.lower() for part in parts for w in re.split(r"[^A-Za-z0-9]+", part) if w}


def _find_frames_dir(root, subject_pattern, cropped, what, subset=None, subsets=()):
    """The folder (root or up to SEARCH_DEPTH below) whose child folders are subjects.

    With `subset`, only folders with a path component (or a word of one, from
    the root's name down) equal to it, case-insensitively (SMIC's "HS"); a tree
    without any of `subsets` is taken whole. Then, with `cropped`, folders with
    "crop" in their path below root are preferred, else those without (and
    among them those named "raw").
    """
    candidates, level = [], [root]
    for depth in range(SEARCH_DEPTH + 1):
        for folder in level:
            if any(re.fullmatch(subject_pattern, c.name, re.I) for c in _folders(folder)):
                candidates.append((depth, folder))
        if depth < SEARCH_DEPTH:
            level = sorted((c for f in level for c in _folders(f)), key=lambda p: _natural_key(p.name))
    if not candidates:
        raise FileNotFoundError(f"No {what} folder (with subject folders like {subject_pattern!r}) under {root}")
    if subset is not None:  # words of the root's own name count too: --root .../HS
        words = {f: _path_words((root.resolve().name, *f.relative_to(root).parts)) for _, f in candidates}
        chosen = [(d, f) for d, f in candidates if subset.lower() in words[f]]
        if not chosen and any(words[f] & {s.lower() for s in subsets} for _, f in candidates):
            found = ", ".join(str(f.relative_to(root)) for _, f in candidates)
            raise FileNotFoundError(f"No {subset} folder (a path component named {subset}) with {what} under {root}; "
                                    f"subject folders were found in: {found}")
        candidates = chosen or candidates

    def rank(item):
        depth, folder = item
        relative = str(folder.relative_to(root)).lower()
        return ("crop" in relative) != cropped, "raw" not in relative and not cropped, depth

    return min(candidates, key=rank)[1]


def _find_sheet(root, patterns, what):
    """(sheet, info lines): `root` itself if a file, else the first match at the shallowest depth.

    Every match at that depth is a candidate (in `patterns` order, then by
    name); the info lines say which one is read and list the others.
    """
    if root.is_file():
        return root, [f"annotation sheet: {root.name} (given as the root)"]
    for depth in range(SEARCH_DEPTH + 1):
        found = []
        for pattern in patterns:
            matches = sorted(p for p in root.glob("/".join(["*"] * depth + [pattern])) if p.is_file())
            found += [p for p in matches if not p.name.startswith(("~$", ".")) and p not in found]
        if found:
            chosen = found[0].relative_to(root)
            if len(found) == 1:
                return found[0], [f"annotation sheet: {chosen}"]
            others = ", ".join(str(p.relative_to(root)) for p in found[1:])
            return found[0], [f"annotation sheet: {chosen} (chosen of {len(found)} found; the others: {others}; "
                              "give another as --root to read it)"]
    raise FileNotFoundError(f"No {what} annotation sheet ({' or '.join(patterns)}) under {root}")


def _worksheet_info(table):
    """An info line naming the worksheet read, when the workbook has several."""
    names = table.attrs.get("worksheets", [])
    if len(names) < 2:
        return []
    listed = ", ".join(repr(n) for n in names)
    return [f"worksheet: {table.attrs['worksheet']!r} of {listed} (name another with --sheet)"]


def _folders(folder):
    """The child folders of `folder`, without other systems' bookkeeping (`media.is_metadata_name`)."""
    return [c for c in folder.iterdir() if c.is_dir() and not media.is_metadata_name(c.name)]


def _subject_dirs(base):
    return {p.name: p for p in _folders(base)}


def _frame_position(numbers, value, what, source, default):
    """Position of frame number `value` in the sorted `numbers`; nearest (warned) if absent."""
    if value is None:
        return default
    if value in numbers:
        return numbers.index(value)
    position = min(range(len(numbers)), key=lambda i: (abs(numbers[i] - value), i))
    warnings.warn(
        f"{source}: {what} frame {value} is not in the clip folder "
        f"(frames {numbers[0]}..{numbers[-1]}); using frame {numbers[position]}",
        stacklevel=4,
    )
    return position


def _sheet_clips(dataset, table, sheet_path, frames_dir, class_names, dropped):
    """Clips of a sheet-annotated dataset (CASME II, SAMM) from its `sheets.read_sheet` table.

    A row whose onset or offset is not annotated (blank, -1, "/") is a problem:
    warned about by row and clip, skipped, never filled in from the folder.
    """
    subjects = _subject_dirs(frames_dir)
    known = set(class_names) | set(OTHER_EMOTIONS[dataset])
    clips = []
    for row in table.to_dict("records"):
        source = f"{sheet_path.name} row {row[sheets.ROW_COLUMN]}"
        clip_id = sheets.cell_text(row["filename"])
        emotion = normalise_emotion(row["emotion"])
        if not sheets.cell_text(row["subject"]) or not clip_id:
            dropped.problem(f"{source}: empty subject or filename cell")
            continue
        subject = match_subject(row["subject"], subjects)
        subject_name = subject or sheets.cell_text(row["subject"])
        if emotion not in known:
            warnings.warn(f"{source}: unknown emotion {sheets.cell_text(row['emotion'])!r} for {clip_id}; clip dropped")
        if emotion not in class_names:
            dropped.drop(emotion or "(blank)", subject_name)
            continue
        if subject is None:
            dropped.problem(f"{source}: no folder for subject {sheets.cell_text(row['subject'])!r} in {frames_dir}")
            continue
        folder, label = subjects[subject] / clip_id, class_names.index(emotion)
        video = None if folder.is_dir() else _clip_video(folder)
        frame_marks = _frame_marks(row, f"{source} ({subject}/{clip_id})", dropped, annotated=("onset", "offset"))
        if frame_marks is None:
            continue
        if video is None:
            clip = _folder_clip(dataset, folder, subject, clip_id, label, emotion, frame_marks, source, dropped)
        else:  # a clip video starts at the onset frame
            onset_n, apex_n, offset_n = frame_marks
            marks = (0, *(None if n is None else n - onset_n for n in (apex_n, offset_n)))
            clip = _video_clip(dataset, video, subject, clip_id, label, emotion, marks, source, dropped)
        if clip is not None:
            clip.action_units = sheets.cell_text(row.get("action_units"))
            clips.append(clip)
    return clips


def _folder_clip(dataset, folder, subject, clip_id, label, emotion, marks, source, dropped):
    """A ClipSpec for a frame folder; `marks` = onset/apex/offset frame numbers (or None), mapped to positions."""
    if not folder.is_dir():
        dropped.problem(f"{source}: clip folder not found: {folder}")
        return None
    skipped = []
    files = media.list_frame_files(folder, skipped)
    if skipped:
        dropped.note(f"{source}: {len(skipped)} files named like frames are not frames, left out: "
                     f"{', '.join(skipped)} in {folder}")
    if not files:
        dropped.problem(f"{source}: clip folder has no image frames: {folder}")
        return None
    numbers = [media.frame_number(f) for f in files]
    onset_n, apex_n, offset_n = marks
    onset = _frame_position(numbers, onset_n, "onset", source, 0)
    offset = _frame_position(numbers, offset_n, "offset", source, len(files) - 1)
    if offset < onset:
        dropped.problem(f"{source}: offset frame {offset_n} is before onset frame {onset_n} in {folder}")
        return None
    apex = None
    if apex_n is not None:
        if numbers[onset] <= apex_n <= numbers[offset]:
            apex = _frame_position(numbers, apex_n, "apex", source, None)
        else:
            dropped.note(f"{source} ({subject}/{clip_id}): apex frame {apex_n} outside onset..offset "
                         f"{numbers[onset]}..{numbers[offset]}; apex will be estimated")
    return ClipSpec(dataset, subject, clip_id, folder, files, label, emotion, onset, apex, offset, len(files), source)


SHEET_LAYOUTS = {
    # name: (sheet file patterns, subject folder pattern, what to call it in errors)
    "casme2": (("CASME2-coding*.xlsx", "CASME2-coding*.csv", "CASME2*.xlsx", "CASME2*.csv"), r"sub\d+", "CASME II"),
    "samm": (("SAMM_Micro_FACS_Codes*.xlsx", "SAMM_Micro_FACS_Codes*.csv", "SAMM*.xlsx", "SAMM*.csv"), r"\d+", "SAMM"),
}


def _read_sheet_dataset(name, root, cropped, worksheet=None, paper_clips=False, all_emotions=False):
    """CASME II or SAMM: an annotation sheet plus one frame folder per clip under subject folders."""
    patterns, subject_pattern, label = SHEET_LAYOUTS[name]
    class_names = class_set(name, all_emotions)
    sheet, info = _find_sheet(root, patterns, label)
    table = sheets.read_sheet(sheet, ("subject", "filename", "onset", "apex", "offset", "emotion"), worksheet)
    frames_dir = _find_frames_dir(root.parent if root.is_file() else root, subject_pattern, cropped, f"{label} frames")
    dropped = DropSummary()
    clips = _sheet_clips(name, table, sheet, frames_dir, class_names, dropped)
    info += _worksheet_info(table)
    clips, paper_info = _paper_clip_set(name, clips, paper_clips, dropped)
    return DatasetSpec(name, class_names, clips, dropped, info, paper_info)


def _paper_clip_set(name, clips, paper_clips, dropped):
    """(clips, info lines): where the kept clips differ from the paper's set; with `paper_clips`, made equal."""
    left_out = PAPER_LEFT_OUT.get(name, {})
    info = []
    for (subject, clip_id), why in left_out.items():
        found = [c for c in clips if (c.subject, c.clip_id) == (subject, clip_id)]
        if not found:
            info.append(f"the paper's set leaves out {subject}/{clip_id} ({why}); it is not among the clips read here")
        elif paper_clips:
            clips = [c for c in clips if c not in found]
            dropped.paper_excluded.append(f"{found[0].source} ({subject}/{clip_id}): {why}")
        else:
            info.append(f"the paper's set leaves out {subject}/{clip_id} ({why}); it is kept here: "
                        "--paper-clips leaves it out")
    return clips, info


def _read_smic(root, cropped, subset="HS"):
    """SMIC: `HS/s1/micro/<class>/<clip>/*.bmp` (or NIR/, VIS/); classes from folder names, no apex.

    The subset's folder is the one with a path component named `subset`, not
    the first in sort order. Its DatasetSpec is named "smic" for HS, else
    "smic-nir" / "smic-vis" (so a cache never mixes subsets).
    """
    class_names = CLASS_SETS["smic"]
    frames_dir = _find_frames_dir(root, r"s\d+", cropped, f"SMIC-{subset} frames", subset, SMIC_SUBSETS)
    dropped = DropSummary()
    clips = []
    for subject_dir in sorted(_subject_dirs(frames_dir).values(), key=lambda p: _natural_key(p.name)):
        if not re.fullmatch(r"s\d+", subject_dir.name, re.I):
            continue
        micro = subject_dir / "micro"
        class_dirs = sorted(_folders(micro)) if micro.is_dir() else []
        clip_dirs = [c for d in class_dirs for c in sorted(_folders(d), key=lambda p: _natural_key(p.name))]
        if not clip_dirs:
            dropped.problem(f"subject folder has no clips under micro/<class>/: {subject_dir}")
            continue
        for clip_dir in clip_dirs:
            emotion = normalise_emotion(clip_dir.parent.name)
            if emotion not in class_names:
                warnings.warn(f"{clip_dir}: unknown emotion folder {clip_dir.parent.name!r}; clip dropped")
                dropped.drop(emotion, subject_dir.name)
                continue
            clip = _folder_clip("smic", clip_dir, subject_dir.name, clip_dir.name, class_names.index(emotion),
                                emotion, (None, None, None), str(clip_dir), dropped)
            if clip is not None:
                clips.append(clip)
    name = "smic" if subset == "HS" else f"smic-{subset.lower()}"
    info = [f"{subset} frames: {frames_dir.relative_to(root)} under {root}"]
    return DatasetSpec(name, class_names, clips, dropped, info)


def _read_manifest(root, worksheet=None):
    """A CSV manifest: subject, path (clip folder or video, relative to the CSV), label, onset, apex, offset.

    Onset/apex/offset are optional: for frame folders they are frame numbers as
    in the file names, for videos 0-based frame indices. Labels are class names
    (class set = sorted unique names) or integers 0..C-1. An action-units
    column is kept as text.
    """
    path, info = _find_sheet(root, ("manifest.csv", "*.csv"), "manifest")
    table = sheets.read_sheet(path, ("subject", "filename", "emotion"), worksheet)
    labels = [sheets.cell_text(v) for v in table["emotion"]]
    if labels and all(re.fullmatch(r"\d+", v) for v in labels if v):
        class_names = tuple(str(i) for i in range(max(int(v) for v in labels if v) + 1))
    else:
        class_names = tuple(sorted({v for v in labels if v}))
    dropped = DropSummary()
    clips = []
    for row, emotion in zip(table.to_dict("records"), labels):
        source = f"{path.name} row {row[sheets.ROW_COLUMN]}"
        subject = sheets.cell_text(row["subject"])
        relative = sheets.cell_text(row["filename"])
        if not subject or not relative or not emotion:
            dropped.problem(f"{source}: empty subject, path or label cell")
            continue
        clip_path = (path.parent / relative).resolve()
        label = class_names.index(emotion)
        clip_id = clip_path.stem if media.is_video(clip_path) else clip_path.name
        marks = _frame_marks(row, f"{source} ({subject}/{clip_id})", dropped)
        if marks is None:
            continue
        if media.is_video(clip_path):
            clip = _video_clip("manifest", clip_path, subject, clip_id, label, emotion, marks, source, dropped)
        else:
            clip = _folder_clip("manifest", clip_path, subject, clip_id, label, emotion, marks, source, dropped)
        if clip is not None:
            clip.action_units = sheets.cell_text(row.get("action_units"))
            clips.append(clip)
    return DatasetSpec("manifest", class_names, clips, dropped, info + _worksheet_info(table))


def _video_clip(dataset, path, subject, clip_id, label, emotion, marks, source, dropped):
    """A ClipSpec for a video; `marks` = (onset, apex, offset) as 0-based frame indices or None."""
    if not path.is_file():
        dropped.problem(f"{source}: video not found: {path}")
        return None
    try:
        count = media.video_frame_count(path)
    except media.FrameReadError as error:
        dropped.problem(f"{source}: {error}")
        return None
    if count == 0:
        dropped.problem(f"{source}: video has no decodable frames: {path}")
        return None
    onset_i, apex_i, offset_i = marks
    onset = min(onset_i if onset_i is not None else 0, count - 1)
    offset = min(offset_i if offset_i is not None else count - 1, count - 1)
    if offset < onset:
        dropped.problem(f"{source}: offset {offset_i} is before onset {onset_i} in {path}")
        return None
    apex = apex_i if apex_i is not None and onset <= apex_i <= offset else None
    if apex_i is not None and apex is None:
        dropped.note(f"{source} ({subject}/{clip_id}): apex frame {apex_i} outside onset..offset {onset}..{offset}; "
                     "apex will be estimated")
    return ClipSpec(dataset, subject, clip_id, path, None, label, emotion, onset, apex, offset, count, source)


def _frame_marks(row, source, dropped, annotated=()):
    """(onset, apex, offset) frame numbers of a row (None where unannotated).

    None, a problem, if a cell is not a number or one of the `annotated`
    columns is not annotated.
    """
    marks = []
    for column in ("onset", "apex", "offset"):
        try:
            marks.append(sheets.parse_frame_number(row.get(column)))
        except ValueError as error:
            dropped.problem(f"{source}: {column} cell {error}")
            return None
        if marks[-1] is None and column in annotated:
            cell = sheets.cell_text(row.get(column))
            dropped.problem(f"{source}: {column} cell {cell!r} is not annotated (blank, negative or '/'); "
                            f"clip skipped, not filled in from the folder's frames")
            return None
    return tuple(marks)


def _clip_video(folder):
    """A video `<clip_id>.<ext>` standing in for a missing clip folder, or None."""
    for suffix in media.VIDEO_SUFFIXES:
        candidate = folder.with_name(folder.name + suffix)
        if candidate.is_file():
            return candidate
    return None
