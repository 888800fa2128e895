# hits-rb: HiTS real/bogus classification. `just all` runs the whole pipeline.
# Every recipe takes the pipeline name (a file in pipelines/); `default` unless given,
# e.g. `just train seed` runs pipelines/seed.toml.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Every recipe runs the binaries of one release build of the whole workspace: building
# stage by stage (`cargo run -p ingest`, ...) would unify features differently per crate and
# compile polars and burn several times over.
bin := env_var_or_default("CARGO_TARGET_DIR", "target") / "release"

# `HITS_CUDA=1 just all` builds the stages with burn-cuda (they fall back to the CPU, saying
# why, where no GPU is usable). Needs no CUDA toolkit to build; the first build takes ~30 min.
features := if env_var_or_default("HITS_CUDA", "0") == "1" { "--features train/cuda,evaluate/cuda,submit/cuda" } else { "" }

# List the recipes.
help:
    @just --list --unsorted

# Build every stage binary (release); the other recipes do this first.
build:
    cargo build --release --workspace --quiet {{features}}

# Stages whose inputs and settings did not change are skipped.
[doc("Run the pipeline end to end: data, ingest, features, train, evaluate (validation, then the held-out real pixels), submit, score, export (ONNX), summary.")]
all name="default": (score name) (evaluate name "--labelled-splits") (export name) (summary name)

# Simulate the default HiTS candidate set into data/sim/.
data name="default": build
    {{bin}}/simulate generate --pipeline pipelines/{{name}}.toml

# Realism check: simulated vs real HiTS stamps, a realism score and histograms (artifacts/sim-check/).
sim-check name="default": build
    {{bin}}/simulate check --pipeline pipelines/{{name}}.toml

# Each stage recipe first brings the stages before it up to date (those whose inputs and
# settings did not change skip themselves), so any recipe works on a fresh clone.

# Read and validate the CSVs, write artifacts/ingest/ (simulating first if the pipeline reads the simulation).
ingest name="default": build
    {{bin}}/simulate generate --pipeline pipelines/{{name}}.toml --if-used
    {{bin}}/ingest --pipeline pipelines/{{name}}.toml

# Stack and normalise stamps, write artifacts/features/.
features name="default": (ingest name)
    {{bin}}/features --pipeline pipelines/{{name}}.toml

# Show an Arrow artifact's schema and size, and render one candidate (text + PNG).
inspect file row="0": build
    {{bin}}/inspect {{file}} --row {{row}}

# Train the pipeline's model, write artifacts/train/ (`just train seed`: the reference recipe).
train name="default" *flags="": (features name)
    {{bin}}/train --pipeline pipelines/{{name}}.toml {{flags}}

# `just evaluate default --split NAME`: a whole labelled split, into artifacts/evaluate/NAME/;
# `--labelled-splits`: every labelled split besides the training one.
[doc("Score the model on the validation candidates, choose the threshold, write artifacts/evaluate/.")]
evaluate name="default" *flags="": (train name)
    {{bin}}/evaluate --pipeline pipelines/{{name}}.toml {{flags}}

# Predict the test split at the chosen threshold: artifacts/submit/submission.csv (`--split NAME` for another).
submit name="default" *flags="": (evaluate name)
    {{bin}}/submit predict --pipeline pipelines/{{name}}.toml {{flags}}

# MODEL is a pipeline's artifacts directory (its train/ and evaluate/), e.g. artifacts/seed;
# flags: --layout id_header|plain, --duplicates drop, --out DIR, --explain ID,... (occlusion maps).
[doc("Score every candidate of a directory of channel CSVs (either layout; with labels.csv also the metrics), or of a .npy/.npz file, with a trained model.")]
predict input model="artifacts" *flags="": build
    {{bin}}/predict {{input}} --model {{model}} {{flags}}

# The model as `artifacts/export/model.onnx` (raw stamps in, P(real) out; normalisation and
# temperature inside), checked with tract against our own inference on every test candidate.
[doc("Export the trained model as ONNX for other runtimes -> artifacts/export/ (model.onnx, export.json, check.csv).")]
export name="default" *flags="": (evaluate name)
    {{bin}}/export --pipeline pipelines/{{name}}.toml {{flags}}

# Makes python/.venv (onnxruntime, numpy) the first time, like bench-peers' own venv.
[doc("Run the exported model in onnxruntime (python/score_onnx.py) on the test split's CSVs; fails unless it agrees with ours to 1e-5.")]
export-check name="default": (export name)
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x python/.venv/bin/python ]; then
        python3 -m venv python/.venv
        python/.venv/bin/pip install --quiet --disable-pip-version-check -r python/requirements.txt
    fi
    artifacts=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb")).get("artifacts", "artifacts"))' pipelines/{{name}}.toml)
    input=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["check"]["input"])' "$artifacts/export/export.json")
    python/.venv/bin/python python/score_onnx.py "$artifacts/export/model.onnx" "$input" \
        --compare "$artifacts/export/check.csv" --out "$artifacts/export/onnxruntime_predictions.csv"

[doc("Accuracy and F1 of the submission against an answer key (id,label) -> artifacts/submit/score.json.")]
score name="default" answers="": (submit name)
    {{bin}}/submit score --pipeline pipelines/{{name}}.toml {{ if answers == "" { "" } else { "--answers " + answers } }}

# Validation and test figures, time per stage, where the report and plots are.
summary name="default": build
    {{bin}}/submit summary --pipeline pipelines/{{name}}.toml

# Metrics of external predictions (CSV label,p_real[,snr]), e.g. Deep-HiTS' released test scores.
evaluate-scores file threshold="0.5": build
    {{bin}}/evaluate --scores {{file}} --threshold {{threshold}}

# Reproduce Deep-HiTS' published test-set figures from its released predictions.
deephits:
    just evaluate-scores ../shared/deephits/test_predictions_cnn_arch7.csv
    just evaluate-scores ../shared/deephits/test_predictions_random_forest.csv

# Parameters are positional: `just bench 0` skips the 250,000-candidate set (~5 GB of disk
# under data/), `just bench 0 4` also trains RotInvCnn for 4 epochs.
[doc("Speed of every stage on this machine -> artifacts/bench/results.json (`just bench 0`: without the 250,000-candidate set).")]
bench large="250000" rot_inv_epochs="2": build
    {{bin}}/bench run --large {{large}} --rot-inv-epochs {{rot_inv_epochs}}

# About 30 min for the three shipped pipelines and five seeds; ~350 MB of disk per run.
[doc("Accuracy of recipes: each pipeline trained with each seed, scored on 20,000 independent simulated candidates -> artifacts/bench/study.json.")]
study *flags="": build
    {{bin}}/bench study {{flags}}

[doc("Ours and the reference Keras notebook's model (TensorFlow CPU, own venv), alternately on the same CSVs; prints the ours / Keras ratios.")]
bench-peers rounds="2" large="250000":
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x bench/.venv/bin/python ]; then
        python3 -m venv bench/.venv
        bench/.venv/bin/pip install --quiet -r bench/peers/requirements.txt
    fi
    cargo build --release --workspace --quiet
    bin={{bin}}
    ours=(); keras=()
    for round in $(seq {{rounds}}); do
        $bin/bench run --large {{large}} --default-epochs 0 --rot-inv-epochs 0 --out artifacts/bench/ours-$round.json
        bench/.venv/bin/python bench/peers/keras_seed.py --split-json artifacts/bench/seed/train/split.json \
            --out artifacts/bench/keras-$round.json
        ours+=(artifacts/bench/ours-$round.json); keras+=(artifacts/bench/keras-$round.json)
        if [ {{large}} -gt 0 ]; then
            bench/.venv/bin/python bench/peers/keras_predict.py data/sim-{{large}}/train \
                --out artifacts/bench/keras-predict-$round.json
            keras+=(artifacts/bench/keras-predict-$round.json)
        fi
    done
    $bin/bench compare --ours "${ours[@]}" --keras "${keras[@]}"

# Run the test suite (debug build; tests make their own tiny data).
test:
    cargo test --workspace --no-fail-fast

# Lints as CI would want them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Remove generated data and artifacts (keeps the build).
clean:
    rm -rf artifacts data/sim
