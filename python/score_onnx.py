"""Score HiTS candidates with the model `just export` wrote (artifacts/export/model.onnx).

    python python/score_onnx.py artifacts/export/model.onnx data/sim/test --out predictions.csv

INPUT is a directory of the four channel CSVs (template.csv, science.csv, difference.csv,
snr_difference.csv; an id column and a header, or 441 plain columns with or without a
header), or a .npy file of shape (N, 21, 21, 4), channels last in that order. Raw pixel
values go in: the normalisation and calibration are inside the graph, the threshold in its
metadata. Writes id,p_real,label. `--compare FILE` (a CSV with id,p_real columns, e.g. the
predictions.csv of `just predict`) exits non-zero unless every P(real) agrees to 1e-5.
Needs numpy and onnxruntime (python/requirements.txt).
"""

import argparse
import csv
import pathlib
import sys

import numpy as np
import onnxruntime as ort

CHANNELS = ("template", "science", "difference", "snr_difference")
PIXELS = 21 * 21
TOLERANCE = 1e-5


def is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_channel(path):
    """Ids (or row numbers) and (N, 441) float32 pixels of one channel CSV."""
    with open(path, newline="") as f:
        first = next(csv.reader(f))
    header = not is_number(first[-1])
    with_ids = len(first) == PIXELS + 1
    pixels = np.loadtxt(path, delimiter=",", skiprows=int(header), dtype=np.float32,
                        usecols=range(int(with_ids), int(with_ids) + PIXELS), ndmin=2)
    if with_ids:
        ids = np.loadtxt(path, delimiter=",", skiprows=int(header), dtype=str, usecols=0, ndmin=1)
    else:
        ids = np.arange(len(pixels)).astype(str)
    return list(ids), pixels


def read_stamps(source):
    """Ids and (N, 21, 21, 4) float32 stamps of a CSV directory or a .npy file."""
    source = pathlib.Path(source)
    if source.suffix == ".npy":
        stamps = np.load(source).astype(np.float32)
        return [str(i) for i in range(len(stamps))], stamps
    channels = [read_channel(source / f"{name}.csv") for name in CHANNELS]
    ids = channels[0][0]
    for name, (other, _) in zip(CHANNELS, channels):
        if other != ids:
            sys.exit(f"{source / (name + '.csv')}: its ids differ from template.csv's")
    stamps = np.stack([pixels for _, pixels in channels], axis=-1).reshape(-1, 21, 21, 4)
    return ids, stamps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model.onnx written by `just export`")
    parser.add_argument("input", help="directory of the four channel CSVs, or a .npy file")
    parser.add_argument("--out", help="write id,p_real,label here")
    parser.add_argument("--compare", help="CSV with id,p_real to agree with (to 1e-5)")
    args = parser.parse_args()

    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    threshold = float(session.get_modelmeta().custom_metadata_map["threshold"])
    ids, stamps = read_stamps(args.input)
    p_real = session.run(["p_real"], {"stamps": stamps})[0]
    called_real = int((p_real >= threshold).sum())
    print(f"{len(ids)} candidates, {called_real} called real at threshold {threshold:.4f} "
          f"(onnxruntime {ort.__version__})")

    if args.out:
        with open(args.out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "p_real", "label"])
            for id_, p in zip(ids, p_real):
                writer.writerow([id_, f"{p:.9g}", int(p >= threshold)])

    if args.compare:
        with open(args.compare, newline="") as f:
            expected = {row["id"]: float(row["p_real"]) for row in csv.DictReader(f)}
        missing = [i for i in ids if i not in expected]
        if missing:
            sys.exit(f"{args.compare}: no P(real) for candidate {missing[0]}")
        differences = np.abs(p_real - np.array([expected[i] for i in ids]))
        worst = int(differences.argmax())
        print(f"largest difference from {args.compare}: {differences[worst]:.2e} "
              f"(candidate {ids[worst]})")
        if not differences[worst] <= TOLERANCE:
            sys.exit(f"onnxruntime disagrees with {args.compare} beyond {TOLERANCE}")


if __name__ == "__main__":
    main()
