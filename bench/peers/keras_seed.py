#!/usr/bin/env python3
"""The peer of `just bench`: the reference Keras notebook's model and recipe, timed on the same CSVs.

Builds the notebook's CNN (4 Conv2D 2x2 'same' 32/32/64/64 + ReLU + 2x2 max-pool, flatten,
3 Dense(64, sigmoid), Dense(2, softmax): 41,986 parameters), trains it with RMSprop, binary
cross-entropy, batch 50, 15 epochs on TensorFlow's CPU backend, and reports the figures our
Rust benchmark reports, as JSON:

  ingest + features: seconds to read the four channel CSVs and the labels into one
                     (N, 21, 21, 4) float32 tensor, scaled per stamp to [0, 1] like our
                     `minmax_per_stamp` normalisation;
  training:          seconds per epoch and in total, final validation accuracy;
  inference:         candidates/s of `model.predict` at batch 1, 64 and 1024.

With --split-json (our `artifacts/.../train/split.json`) it trains and validates on exactly the
rows our `train` stage used, so the accuracies compare like for like.
"""

import argparse
import json
import os
import platform
import sys
import time

# Quiet TensorFlow's start-up chatter; the JSON on stdout is the result.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

CHANNELS = ["template", "science", "difference", "snr_difference"]
SIDE = 21


def load(train_dir, id_header):
    """The notebook's loading: four CSVs -> (N, 21, 21, 4), labels one-hot."""
    frames = []
    for channel in CHANNELS:
        path = os.path.join(train_dir, f"{channel}.csv")
        if id_header:
            frame = pd.read_csv(path, index_col=0)
        else:
            frame = pd.read_csv(path, header=None)
        frames.append(frame.to_numpy(dtype=np.float32))
    stamps = np.stack([f.reshape(-1, SIDE, SIDE) for f in frames], axis=-1)
    labels_path = os.path.join(train_dir, "labels.csv")
    labels = pd.read_csv(labels_path, index_col=0 if id_header else None, header=0 if id_header else None)
    labels = labels.to_numpy().reshape(-1).astype(np.int64)
    if len(labels) != len(stamps):
        sys.exit(f"error: {labels_path}: {len(labels)} labels for {len(stamps)} candidates")
    # Per stamp and channel to [0, 1], as our minmax_per_stamp.
    low = stamps.min(axis=(1, 2), keepdims=True)
    high = stamps.max(axis=(1, 2), keepdims=True)
    span = np.where(high > low, high - low, 1.0)
    stamps = (stamps - low) / span
    return stamps.astype(np.float32), labels


def build_model():
    layers = tf.keras.layers
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(SIDE, SIDE, 4)),
            layers.Conv2D(32, (2, 2), padding="same", activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(32, (2, 2), padding="same", activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (2, 2), padding="same", activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (2, 2), padding="same", activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(64, activation="sigmoid"),
            layers.Dense(64, activation="sigmoid"),
            layers.Dense(64, activation="sigmoid"),
            layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    return model


class EpochTimer(tf.keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def split_rows(labels, split_json, seed):
    if split_json:
        with open(split_json) as f:
            split = json.load(f)
        return np.array(split["train_rows"]), np.array(split["validation_rows"])
    # Stratified 2/3 : 1/3, as the notebook's train_test_split(stratify=...).
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in (0, 1):
        rows = rng.permutation(np.flatnonzero(labels == label))
        cut = int(round(len(rows) * 2 / 3))
        train.extend(rows[:cut])
        val.extend(rows[cut:])
    return np.sort(train), np.sort(val)


def throughput(model, stamps, batch, minimum_seconds=2.0):
    """Candidates/s of model.predict at this batch size (warm, best of the repeats)."""
    n = batch if batch == 1 else min(len(stamps), max(batch, 1024) * 4)
    data = np.ascontiguousarray(stamps[np.arange(n) % len(stamps)])
    if batch == 1:
        # Latency: one candidate per call, as an alert stream would ask; `model(x)` is how
        # Keras recommends calling on single inputs (predict adds per-call overhead).
        one = tf.constant(data[:1])
        model(one, training=False)
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < minimum_seconds:
            model(one, training=False)
            calls += 1
        return calls / (time.perf_counter() - started)
    model.predict(data, batch_size=batch, verbose=0)
    best = 0.0
    started = time.perf_counter()
    while time.perf_counter() - started < minimum_seconds or best == 0.0:
        t = time.perf_counter()
        model.predict(data, batch_size=batch, verbose=0)
        best = max(best, n / (time.perf_counter() - t))
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-dir", default="data/sim/train")
    parser.add_argument("--plain", action="store_true", help="files without header/id column")
    parser.add_argument("--split-json", help="use our train stage's split rows")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()

    tf.keras.utils.set_random_seed(args.seed)
    started = time.perf_counter()
    stamps, labels = load(args.train_dir, id_header=not args.plain)
    load_seconds = time.perf_counter() - started
    csv_bytes = sum(
        os.path.getsize(os.path.join(args.train_dir, f"{c}.csv")) for c in CHANNELS
    )

    train_rows, val_rows = split_rows(labels, args.split_json, args.seed)
    one_hot = tf.keras.utils.to_categorical(labels, 2)
    model = build_model()
    parameters = model.count_params()
    timer = EpochTimer()
    started = time.perf_counter()
    history = model.fit(
        stamps[train_rows],
        one_hot[train_rows],
        validation_data=(stamps[val_rows], one_hot[val_rows]),
        batch_size=args.batch_size,
        epochs=args.epochs,
        shuffle=True,
        verbose=0,
        callbacks=[timer],
    )
    train_seconds = time.perf_counter() - started

    result = {
        "peer": "keras",
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "threads": {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
        "parameters": parameters,
        "candidates": int(len(labels)),
        "ingest_features": {
            "seconds": load_seconds,
            "candidates_per_second": len(labels) / load_seconds,
            "csv_megabytes_per_second": csv_bytes / 1e6 / load_seconds,
        },
        "seed_training": {
            "train_candidates": int(len(train_rows)),
            "validation_candidates": int(len(val_rows)),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "seconds_total": train_seconds,
            "seconds_per_epoch": timer.seconds,
            "val_accuracy": float(history.history["val_accuracy"][-1]),
            "val_loss": float(history.history["val_loss"][-1]),
        },
        "inference_candidates_per_second": {
            str(batch): throughput(model, stamps, batch) for batch in (1, 64, 1024)
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
