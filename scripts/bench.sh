#!/usr/bin/env bash
# The benchmark command (not part of the test command): builds release binaries, restarts the
# local environment (so it runs the current LocalStack plugin, from a clean state), runs
# `durable-bench` and writes BENCHMARKS.md. Arguments go to durable-bench (e.g. --runs 50).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
echo "[bench] building release binaries" >&2
cargo build --release --quiet --bin orchestrator --bin bench-durable --bin bench-plain --bin durable-bench
scripts/local-aws.sh install
scripts/local-aws.sh restart
target/release/durable-bench --bin-dir target/release "$@"
# The emulator paths' per-request cost, measured in the same environment, goes before the targets.
section="$(.local-aws/venv/bin/python scripts/emulator-paths.py --table durable-bench-journal --markdown)"
SECTION="$section" python3 - <<'PY'
import os
text = open("BENCHMARKS.md").read()
head, sep, tail = text.partition("## Targets")
open("BENCHMARKS.md", "w").write(head + os.environ["SECTION"].rstrip() + "\n\n" + sep + tail)
PY
echo "[bench] BENCHMARKS.md written" >&2
