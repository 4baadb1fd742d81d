#!/usr/bin/env bash
# Runs `cargo lambda` (cargo-lambda from PyPI, pinned, with the Zig linker it brings), installing
# it into .local-aws/cargo-lambda on first use: what builds the handler Lambdas for AWS, as the
# CDK construct's RustFunction does. For example:
#
#   scripts/cargo-lambda.sh build --release --arm64 --manifest-path ../shop/Cargo.toml
#   scripts/cargo-lambda.sh --version
#
# Cross-compiling for arm64 needs the Rust target too: `rustup target add aarch64-unknown-linux-gnu`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${LOCAL_AWS_DIR:-$ROOT/.local-aws}"
VENV="$STATE/cargo-lambda"
CARGO_LAMBDA_VERSION="1.9.2"

if ! "$VENV/bin/cargo-lambda" --version 2>/dev/null | grep -q "$CARGO_LAMBDA_VERSION"; then
  echo "[cargo-lambda] installing cargo-lambda $CARGO_LAMBDA_VERSION into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
fi
# `cargo lambda` finds the subcommand and its Zig on PATH.
export PATH="$VENV/bin:$PATH"
exec cargo lambda "$@"
