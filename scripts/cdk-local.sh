#!/usr/bin/env bash
# Deploys the CDK example stack (infra-cdk) into the running local environment and runs the
# checkout example through it. Not part of the test command (about a minute).
#
# Two LocalStack limits found by trying: stack updates that move an alias fail (so the script
# starts from a fresh environment), and LocalStack community has no provider for `Custom::AWS` (the deploy-time registration custom
# resource): CloudFormation skips it with a warning and reports success. This script therefore
# does the registration itself, with the same `register` event the custom resource sends.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 CDK_DEFAULT_ACCOUNT=000000000000 CDK_DEFAULT_REGION=us-east-1

# A fresh local environment: LocalStack fails stack updates that move an alias ("Alias already
# exists") and does not fully clean up a deleted stack. (Run scripts/deploy-local.sh again
# afterwards for the demo and the tests.)
scripts/local-aws.sh restart
cargo build --quiet --bin orchestrator --bin checkout --bin approvals --bin trips --bin fanout --bin durable-local
assets="$(mktemp -d)"
trap 'rm -rf "$assets"' EXIT
for binary in orchestrator checkout approvals trips fanout; do
  mkdir -p "$assets/$binary"
  strip --strip-all -o "$assets/$binary/bootstrap" "target/debug/$binary"
done

cd infra-cdk
npm ci --no-audit --no-fund --silent
npx tsc
npx cdk bootstrap "aws://000000000000/us-east-1" --no-notices >/dev/null
outputs="$ROOT/.local-aws/cdk-outputs.json"
DURABLE_ASSETS_DIR="$assets" npx cdk deploy --require-approval never --no-notices --outputs-file "$outputs"
cd "$ROOT"

read -r url table bucket orchestrator aliases < <(.local-aws/venv/bin/python - "$outputs" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))["DurableLambdaExamples"]
print(o["IngressUrl"], o["JournalTable"], o["PayloadBucket"], o["OrchestratorFunction"], o["ServiceAliases"])
PY
)
for alias in ${aliases//,/ }; do
  target/debug/durable-local register --orchestrator "$orchestrator" "$alias" >/dev/null
  echo "[cdk-local] registered $alias"
done
deployment="$ROOT/.local-aws/cdk-deployment.json"
cat > "$deployment" <<JSON
{"prefix":"DurableLambdaExamples","table":"$table","bucket":"$bucket","orchestrator_function":"$orchestrator","orchestrator_url":"$url","handlers":{},"services":{}}
JSON
target/debug/durable-local --deployment "$deployment" invoke checkout checkout '{"order_id":"cdk-1","items":["book"],"amount_cents":1299}'
