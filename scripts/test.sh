#!/usr/bin/env bash
# Runs every test: the unit tests of all crates and the end-to-end tests against the local AWS
# environment (brought up here, and stopped again at the end if this script started it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

started_here=0
if ! scripts/local-aws.sh status >/dev/null 2>&1; then
  started_here=1
fi
cleanup() {
  if [ "$started_here" = 1 ] && [ -z "${KEEP_LOCAL_AWS:-}" ]; then
    scripts/local-aws.sh down || true
  fi
}
trap cleanup EXIT

echo "== unit tests" >&2
cargo test --workspace --exclude durable-local
cargo test -p durable-local --lib --bins

echo "== CDK app (infra-cdk)" >&2
scripts/test-cdk.sh

echo "== local AWS environment" >&2
scripts/local-aws.sh up
# The shared deployment gets no sweep schedule: its tests send sweeps and check what each did.
scripts/deploy-local.sh --no-sweep-schedule

echo "== end-to-end tests against LocalStack" >&2
cargo test -p durable-local --test '*'

echo "== the test kit (durable-testing's TestEnv) against the deployed examples" >&2
cargo test -p durable-testing --test deployed_examples -- --include-ignored
