# hits-rb: HiTS real/bogus classification. `just all` runs the whole pipeline.
# Every recipe takes the pipeline name (a file in pipelines/); `default` unless given,
# e.g. `just train seed` runs pipelines/seed.toml.

set shell := ["bash", "-euo", "pipefail", "-c"]

cargo_run := "cargo run --release --quiet"

# List the recipes.
help:
    @just --list --unsorted

# Run the pipeline end to end: data -> ingest -> features -> train.
all name="default": (data name) (ingest name) (features name) (train name)

# Simulate the default HiTS candidate set into data/sim/.
data name="default":
    {{cargo_run}} -p simulator -- generate --pipeline pipelines/{{name}}.toml

# Realism check: simulated vs real HiTS stamps and condition histograms (PNG in artifacts/sim-check/).
sim-check name="default":
    {{cargo_run}} -p simulator -- check --pipeline pipelines/{{name}}.toml

# Read and validate the CSVs, write artifacts/ingest/.
ingest name="default":
    {{cargo_run}} -p ingest -- --pipeline pipelines/{{name}}.toml

# Stack and normalise stamps, write artifacts/features/.
features name="default":
    {{cargo_run}} -p features -- --pipeline pipelines/{{name}}.toml

# Show an Arrow artifact's schema and size, and render one candidate (text + PNG).
inspect file row="0":
    {{cargo_run}} -p features --bin inspect -- {{file}} --row {{row}}

# Train the pipeline's model, write artifacts/train/ (`just train seed`: the reference recipe).
train name="default" *flags="":
    {{cargo_run}} -p train -- --pipeline pipelines/{{name}}.toml {{flags}}

# Metrics of external predictions (CSV label,p_real[,snr]), e.g. Deep-HiTS' released test scores.
evaluate-scores file threshold="0.5":
    {{cargo_run}} -p evaluate -- --scores {{file}} --threshold {{threshold}}

# Reproduce Deep-HiTS' published test-set figures from its released predictions.
deephits:
    just evaluate-scores ../shared/deephits/test_predictions_cnn_arch7.csv
    just evaluate-scores ../shared/deephits/test_predictions_random_forest.csv

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
