#!/usr/bin/env bash
# One command for a newcomer: bring the local AWS environment up, deploy the engine and the
# examples, run the checkout example through the orchestrator, and print its output and journal.
# The environment keeps running afterwards (stop it with scripts/local-aws.sh down).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/local-aws.sh up
scripts/deploy-local.sh
echo
exec target/debug/durable-local demo
