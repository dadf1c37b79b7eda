"""How far each temporal plan puts the annotated apex from the nearest timeline frame.

For every clip with an annotated apex (N0 = offset - onset + 1 source frames,
apex a = apex - onset), builds the N-frame plan with
`cmnet_keras.data.temporal.temporal_plan` ("uniform": the paper's regular
intervals; "apex": onset -> apex and apex -> offset) and measures the distance
in source frames between a and the source position of the nearest timeline
frame: mean, median, max, and the share of clips whose apex frame is not one of
the N (distance > 0). Also the largest gap between neighbouring timeline frames
(mean over clips), the price of anchoring the apex. Tables:

- the CASME II annotation table (frame numbers only; 200 fps, so also in ms);
- the embedded dataset's `embedded_manifest.csv` (true apex), generated into a
  temporary folder (about 30 s) unless `--embedded` names a folder holding one.

    PYTHONPATH=. python bench/apex_offsets.py [--casme2 CSV] [--embedded DIR] [--num-frames 16]
"""

import argparse
import pathlib
import sys
import tempfile

import numpy as np
import pandas as pd

from cmnet_keras.data import temporal

CASME2_TABLE = "/work/shared/data/casme2_annotations.csv"
CASME2_FPS = 200


def apex_offsets(table, num_frames, method, source):
    """Per clip: (distance from the apex to the nearest timeline frame, largest gap), in source frames."""
    distances, gaps = [], []
    for row in table.itertuples():
        num_source, apex = row.offset - row.onset + 1, row.apex - row.onset
        try:
            plan = temporal.temporal_plan(num_source, num_frames, apex=apex, method=method)
        except ValueError as error:
            raise ValueError(f"{source}, row {row.Index + 2} (onset {row.onset}, apex {row.apex}, "
                             f"offset {row.offset}): {error}") from None
        positions = plan.source_positions.astype(np.float64)
        distances.append(np.abs(positions - apex).min())
        gaps.append(np.diff(positions).max() if num_source > 1 else 0.0)
    return np.array(distances), np.array(gaps)


def summary_rows(name, table, num_frames, fps, source):
    rows = []
    for method in temporal.METHODS:
        distance, gap = apex_offsets(table, num_frames, method, source)
        stats = (distance.mean(), np.median(distance), distance.max())
        rows.append({
            "data": name, "method": method, "clips": len(table),
            "N0 < N": int((table.offset - table.onset + 1 < num_frames).sum()),
            "mean / median / max (frames)": " / ".join(f"{v:.2f}" for v in stats),
            "mean / median / max (ms)": " / ".join(f"{1000 * v / fps:.1f}" for v in stats) if fps else "-",
            "apex frame not on timeline": f"{(distance > 0).mean():.1%}",
            "largest gap, mean (frames)": f"{gap.mean():.2f}",
        })
    return rows


def read_table(path, source):
    """onset, apex, offset of the clips whose apex is annotated (apex -1 or blank dropped)."""
    table = pd.read_csv(path)
    missing = {"onset", "apex", "offset"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: no column(s) {sorted(missing)} (columns: {list(table.columns)})")
    apex = pd.to_numeric(table.apex, errors="coerce")
    known = table[apex.notna() & (apex >= 0)].astype({"onset": int, "apex": int, "offset": int})
    print(f"{source}: {len(table)} clips, {len(table) - len(known)} without an apex left out")
    return known


def read_embedded(folder, seed):
    """The embedded dataset's clips (true apex) from `folder`, or from a temporary generated copy."""
    from cmnet_keras.data.generator.dataset import MANIFEST, generate_embedded_dataset

    if folder is not None:
        manifest = pathlib.Path(folder) / MANIFEST
        if not manifest.is_file():
            raise SystemExit(f"--embedded {folder}: no {MANIFEST} there")
        return read_table(manifest, "embedded"), manifest
    with tempfile.TemporaryDirectory(prefix="apex_offsets_") as tmp:
        print(f"generating the embedded dataset (seed {seed}) into {tmp} ...", flush=True)
        root = generate_embedded_dataset(pathlib.Path(tmp) / "embedded", seed=seed)
        return read_table(root / MANIFEST, "embedded"), f"embedded dataset (seed {seed}) {MANIFEST}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--casme2", default=CASME2_TABLE, help="CASME II annotation table (CSV)")
    parser.add_argument("--embedded", default=None, help="folder with embedded_manifest.csv (default: generate)")
    parser.add_argument("--seed", type=int, default=0, help="seed of a generated embedded dataset")
    parser.add_argument("--num-frames", type=int, default=16)
    args = parser.parse_args(argv)
    casme2 = read_table(args.casme2, "CASME II")
    embedded, manifest = read_embedded(args.embedded, args.seed)
    rows = (summary_rows(f"CASME II ({CASME2_FPS} fps)", casme2, args.num_frames, CASME2_FPS, args.casme2)
            + summary_rows("embedded", embedded, args.num_frames, None, manifest))
    print(f"\nN = {args.num_frames}; distance from the annotated apex to the nearest timeline frame "
          f"(source frames)\n")
    print("| " + " | ".join(rows[0]) + " |")
    print("| --- | --- |" + " ---: |" * (len(rows[0]) - 2))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
