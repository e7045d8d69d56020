#!/usr/bin/env bash
# Runs a single Arca development node: installs build dependencies, builds `arcad` and `arca`, and starts
# `arcad dev`, which initializes and unseals the node and prints the settings the CLI needs.
# Data lives in ~/.arca/dev (override with ARCA_DEV_DIR). Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
cargo build --release --bin arcad --bin arca
echo "arca CLI: $(pwd)/target/release/arca  (add $(pwd)/target/release to PATH)"
exec ./target/release/arcad dev "$@"
