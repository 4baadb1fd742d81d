#!/usr/bin/env bash
# The CDK app's tests: install its pinned packages, compile, run the assertion tests, and check
# that `cdk synth` succeeds offline (prebuilt placeholder assets: no cargo-lambda, no network).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/infra-cdk"
command -v npm >/dev/null 2>&1 || { echo "[cdk] npm (Node.js 20+) is required for the CDK tests" >&2; exit 1; }
npm ci --no-audit --no-fund --silent
npm test
assets="$(mktemp -d)"
out="$(mktemp -d)"
trap 'rm -rf "$assets" "$out"' EXIT
for binary in orchestrator checkout approvals trips fanout; do
  mkdir -p "$assets/$binary"
  printf '#!/bin/sh\n' > "$assets/$binary/bootstrap"
done
DURABLE_ASSETS_DIR="$assets" npx cdk synth --no-notices -q -o "$out" >/dev/null
test -s "$out/DurableLambdaExamples.template.json"
echo "[cdk] cdk synth: ok ($(grep -c '"Type"' "$out/DurableLambdaExamples.template.json") typed entries in the template)"
