#!/usr/bin/env bash
# One command for a newcomer: bring the local AWS environment up, deploy the engine and the
# examples, run the checkout example through the orchestrator, print its output and journal,
# then list and describe it with the `durable` command and say where the console is.
# The environment keeps running afterwards (stop it with scripts/local-aws.sh down).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/local-aws.sh up
scripts/deploy-local.sh
cargo build --quiet -p durable-cli
echo
out="$(target/debug/durable-local demo)"
printf '%s\n' "$out"
id="$(printf '%s\n' "$out" | grep -o 'inv_checkout\.[0-9a-z]*' | head -1)"
echo
echo "\$ durable list --service checkout --since 10m"
target/debug/durable list --service checkout --since 10m
echo
echo "\$ durable describe $id"
target/debug/durable describe "$id"
echo
url="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["orchestrator_url"])' .local-aws/deployment.json)"
echo "The console: run 'target/debug/durable console' and open http://127.0.0.1:8080/console"
echo "(or ${url}console, with that host name resolved to 127.0.0.1:4566)."
