#!/usr/bin/env bash
# Builds the orchestrator and the example Lambdas and deploys them into the running local
# environment (table, bucket, functions, version + alias, registration). Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
echo "[deploy] building the Lambda binaries and the local tooling" >&2
cargo build --quiet --bin orchestrator --bin checkout --bin approvals --bin trips --bin fanout --bin cart --bin signup --bin test-services --bin versioned --bin durable-local --bin durable
exec target/debug/durable-local deploy "$@"
