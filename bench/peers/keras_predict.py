"""Score a directory of candidate CSVs the way the reference notebook does: pandas read_csv
of the four channel files (and the labels), reshape to (N, 21, 21, 4), scale per stamp, Keras
predict with the seed CNN, and a submission CSV. Prints and writes a JSON with the wall time and peak RSS of the whole job.

The weights are the architecture's initial ones: the time and memory of predict do not depend
on them (the accuracy of the trained model is `keras_seed.py`'s business).
"""

import argparse
import json
import os
import resource
import time

started = time.perf_counter()
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_seed import CHANNELS, build_model, load  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help="directory of template/science/difference/snr_difference.csv")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    imported = time.perf_counter()

    # The notebook's reading and scaling (as keras_seed.py's, which also reads the labels).
    ids = pd.read_csv(os.path.join(args.input, "template.csv"), usecols=[0]).iloc[:, 0]
    stamps, _ = load(args.input, id_header=True)
    loaded = time.perf_counter()

    model = build_model()
    p_real = model.predict(stamps, batch_size=args.batch_size, verbose=0)[:, 1]
    predicted = time.perf_counter()
    out_csv = os.path.join(os.path.dirname(args.out or "."), "keras-predictions.csv")
    pd.DataFrame({"id": ids, "p_real": p_real, "label": (p_real >= 0.5).astype(int)}).to_csv(
        out_csv, index=False
    )
    finished = time.perf_counter()

    seconds = finished - started
    csv_bytes = sum(os.path.getsize(os.path.join(args.input, f"{c}.csv")) for c in CHANNELS)
    result = {
        "peer": "keras",
        "tensorflow": tf.__version__,
        "predict": {
            "candidates": int(len(ids)),
            "batch_size": args.batch_size,
            "seconds": seconds,
            "seconds_import": imported - started,
            "seconds_read_reshape": loaded - imported,
            "seconds_predict": predicted - loaded,
            "seconds_write": finished - predicted,
            "candidates_per_second": len(ids) / seconds,
            "csv_megabytes_per_second": csv_bytes / 1e6 / seconds,
            # Linux reports ru_maxrss in KiB.
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
