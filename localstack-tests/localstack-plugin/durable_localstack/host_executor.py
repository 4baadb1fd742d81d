"""A LocalStack Lambda executor that runs a function's `bootstrap` as a host process.

LocalStack's only built-in executor needs Docker. This one unpacks nothing itself (LocalStack
already unzips the code), starts `bootstrap` with the environment LocalStack computed, and serves
the Lambda Runtime API (2018-06-01) on 127.0.0.1 so that real `lambda_runtime` binaries run
unchanged. It reproduces the AWS behaviours the engine relies on: function errors, a crash of
the runtime process (Runtime.ExitError, and a fresh process for the next invoke), timeouts
(Sandbox.Timedout), and the 6 MB response limit.

Every invocation is also appended as a JSON line to `$DURABLE_LAMBDA_LOG_DIR/invocations.jsonl`
so that tests can count Lambda invocations independently of the code under test.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

LOG = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 6 * 1024 * 1024
STARTUP_TIMEOUT_S = 20.0
API_PREFIX = "/2018-06-01/runtime"


def _log_dir() -> Path:
    path = Path(os.environ.get("DURABLE_LAMBDA_LOG_DIR") or "/tmp/durable-lambda-logs")
    path.mkdir(parents=True, exist_ok=True)
    return path


_record_lock = threading.Lock()


def _record_invocation(record: dict) -> None:
    line = json.dumps(record, separators=(",", ":")) + "\n"
    with _record_lock, open(_log_dir() / "invocations.jsonl", "a", encoding="utf-8") as f:
        f.write(line)


@dataclass
class _Pending:
    """One invocation handed to the runtime process, and its outcome once known."""

    request_id: str
    payload: bytes
    function_arn: str
    trace_id: str
    deadline_ms: int
    done: threading.Event = field(default_factory=threading.Event)
    result: bytes | None = None
    is_error: bool = False
    # When the runtime received the event and when it answered: what AWS bills as the
    # invocation's duration (the executor's own overhead around it is not billed).
    delivered: float | None = None
    answered: float | None = None


class _Generation:
    """One runtime process and the Runtime API server it talks to.

    A crashed or timed-out process is replaced by a new generation with its own server and
    queue, so a request thread of the old process can never take the next invocation.
    """

    def __init__(self, executor: "HostRuntimeExecutor") -> None:
        self.executor = executor
        self.queue: queue.Queue[_Pending | None] = queue.Queue()
        self.ready = threading.Event()
        self.init_error: bytes | None = None
        self.current: _Pending | None = None
        self.process: subprocess.Popen | None = None
        handler = self._handler_class()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, name=f"lambda-runtime-api-{self.port}", daemon=True
        )
        self.thread.start()

    def _handler_class(self):
        gen = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle's algorithm on, the body waits
            # for the client's delayed ACK (40 ms on Linux) and every invocation would take
            # 40 ms longer than on Lambda.
            disable_nagle_algorithm = True

            def log_message(self, fmt, *args):  # keep LocalStack's log readable
                LOG.debug("runtime api %s: " + fmt, gen.port, *args)

            def _reply(self, status: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def do_GET(self):
                if self.path != f"{API_PREFIX}/invocation/next":
                    return self._reply(HTTPStatus.NOT_FOUND)
                gen.ready.set()
                pending = gen.queue.get()
                if pending is None:  # generation retired while this request waited
                    return self._reply(HTTPStatus.GONE)
                gen.current = pending
                pending.delivered = time.monotonic()
                self._reply(
                    HTTPStatus.OK,
                    pending.payload,
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": pending.request_id,
                        "Lambda-Runtime-Deadline-Ms": str(pending.deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": pending.function_arn,
                        "Lambda-Runtime-Trace-Id": pending.trace_id,
                    },
                )

            def do_POST(self):
                body = self._body()
                if self.path == f"{API_PREFIX}/init/error":
                    gen.init_error = body or b'{"errorType":"Runtime.InitError"}'
                    gen.ready.set()
                    return self._reply(HTTPStatus.ACCEPTED)
                parts = self.path[len(API_PREFIX) :].strip("/").split("/")
                if len(parts) != 3 or parts[0] != "invocation" or parts[2] not in ("response", "error"):
                    return self._reply(HTTPStatus.NOT_FOUND)
                pending = gen.current
                if pending is None or pending.request_id != parts[1] or pending.done.is_set():
                    return self._reply(HTTPStatus.BAD_REQUEST)
                if parts[2] == "response" and len(body) > MAX_RESPONSE_BYTES:
                    pending.is_error = True
                    pending.result = json.dumps(
                        {
                            "errorType": "Function.ResponseSizeTooLarge",
                            "errorMessage": f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
                        }
                    ).encode()
                    gen.current = None
                    pending.done.set()
                    return self._reply(HTTPStatus.PAYLOAD_TOO_LARGE)
                pending.is_error = parts[2] == "error"
                pending.result = body
                pending.answered = time.monotonic()
                gen.current = None
                pending.done.set()
                self._reply(HTTPStatus.ACCEPTED)

        return Handler

    def spawn(self, code_dir: Path, env_vars: dict[str, str], log_path: Path) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        env.update(env_vars)
        env["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{self.port}"
        env["LAMBDA_TASK_ROOT"] = str(code_dir)
        bootstrap = code_dir / "bootstrap"
        if not bootstrap.exists():
            raise LambdaRuntimeException(f"no bootstrap in the function code at {code_dir}")
        log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [str(bootstrap)],
            cwd=str(code_dir),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def retire(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                LOG.warning("runtime process %s did not exit after SIGKILL", self.process.pid)
        self.queue.put(None)
        self.server.shutdown()
        self.server.server_close()


class HostRuntimeExecutor(RuntimeExecutor):
    """Runs one Lambda execution environment as a host process."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id, function_version)
        self.env_vars: dict[str, str] = {}
        self.generation: _Generation | None = None
        self.invoke_lock = threading.Lock()
        name = function_version.id.function_name
        self.log_path = _log_dir() / f"{name}-{function_version.id.qualifier}-{id}.log"

    def _code_dir(self) -> Path:
        return Path(self.function_version.config.code.get_unzipped_code_location())

    def _start_generation(self) -> _Generation:
        gen = _Generation(self)
        try:
            gen.spawn(self._code_dir(), self.env_vars, self.log_path)
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not gen.ready.wait(0.05):
                if not gen.alive():
                    raise LambdaRuntimeException(
                        f"runtime exited during init with {gen.process.returncode}; see {self.log_path}"
                    )
                if time.monotonic() > deadline:
                    raise LambdaRuntimeException(f"runtime did not start in {STARTUP_TIMEOUT_S}s")
            if gen.init_error is not None:
                raise LambdaRuntimeException(f"runtime init error: {gen.init_error!r}")
        except Exception:
            gen.retire()
            raise
        self.generation = gen
        return gen

    # RuntimeExecutor interface

    def start(self, env_vars: dict[str, str]) -> None:
        self.env_vars = {k: str(v) for k, v in env_vars.items()}
        # Lambdas reach LocalStack on loopback, whatever LocalStack computed for containers.
        port = os.environ.get("GATEWAY_LISTEN", "127.0.0.1:4566").rsplit(":", 1)[-1]
        # A function may name another loopback endpoint (the benchmark's counting proxy).
        override = self.env_vars.get("DURABLE_AWS_ENDPOINT", "")
        if override.startswith("http://127.0.0.1:"):
            self.env_vars["AWS_ENDPOINT_URL"] = override
        else:
            self.env_vars["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
            # DynamoDB requests go to DynamoDB Local itself (the same shared database
            # LocalStack's DynamoDB forwards to), sparing LocalStack's gateway most requests.
            dynamodb = os.environ.get("DURABLE_DYNAMODB_ENDPOINT", "")
            if dynamodb.startswith("http://127.0.0.1:"):
                self.env_vars.setdefault("AWS_ENDPOINT_URL_DYNAMODB", dynamodb)
        self.env_vars["LOCALSTACK_HOSTNAME"] = "127.0.0.1"
        for key in ("RUST_LOG", "RUST_BACKTRACE"):
            if key in os.environ and key not in self.env_vars:
                self.env_vars[key] = os.environ[key]
        self._start_generation()

    def stop(self) -> None:
        gen, self.generation = self.generation, None
        if gen is not None:
            gen.retire()

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        port = self.generation.port if self.generation else 0
        return f"http://127.0.0.1:{port}"

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        with self.invoke_lock:
            return self._invoke(payload)

    def _invoke(self, payload: dict[str, str]) -> InvocationResult:
        request_id = payload["invoke-id"]
        timeout_s = float(self.function_version.config.timeout or 3)
        started = time.monotonic()
        gen = self.generation
        if gen is None or not gen.alive():
            if gen is not None:
                gen.retire()
            gen = self._start_generation()  # AWS starts a fresh runtime after a crash
        body = payload.get("payload") or ""
        pending = _Pending(
            request_id=request_id,
            payload=body.encode() if isinstance(body, str) else body,
            function_arn=payload.get("invoked-function-arn", ""),
            trace_id=payload.get("trace-id", ""),
            deadline_ms=int(time.time() * 1000 + timeout_s * 1000),
        )
        log_offset = self._log_size()
        gen.queue.put(pending)
        error_type = None
        while not pending.done.wait(0.02):
            if not gen.alive():
                code = gen.process.returncode
                status = f"signal: {-code}" if code < 0 else f"exit status {code}"
                error_type = "Runtime.ExitError"
                pending.is_error = True
                pending.result = json.dumps(
                    {
                        "errorType": error_type,
                        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {status}",
                    }
                ).encode()
                break
            if time.monotonic() - started > timeout_s:
                error_type = "Sandbox.Timedout"
                pending.is_error = True
                pending.result = json.dumps(
                    {
                        "errorType": error_type,
                        "errorMessage": f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds",
                    }
                ).encode()
                break
        if error_type is not None:
            gen.retire()
            self.generation = None
        elif pending.is_error:
            try:
                error_type = json.loads(pending.result or b"{}").get("errorType")
            except (ValueError, AttributeError):
                error_type = "Unknown"
        _record_invocation(
            {
                "function": self.function_version.id.function_name,
                "qualifier": self.function_version.id.qualifier,
                "request_id": request_id,
                "environment": self.id,
                "is_error": pending.is_error,
                "error_type": error_type,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
                # From the event reaching the runtime to its answer (Lambda's billed duration);
                # the whole call when the runtime never answered (crash, timeout).
                "billed_ms": round(
                    (
                        (pending.answered - pending.delivered)
                        if pending.answered is not None and pending.delivered is not None
                        else time.monotonic() - started
                    )
                    * 1000,
                    1,
                ),
                "payload_head": pending.payload[:400].decode("utf-8", "replace"),
            }
        )
        logs = self._read_logs(log_offset)
        return InvocationResult(request_id, pending.result, pending.is_error, logs)

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def _read_logs(self, offset: int, limit: int = 256 * 1024) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read(limit).decode("utf-8", "replace")
        except OSError:
            return ""

    def get_logs(self) -> str:
        return self._read_logs(max(0, self._log_size() - 64 * 1024))

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        code = function_version.config.code
        if code is None:
            raise LambdaRuntimeException("the host executor runs zip-packaged functions only")
        code.prepare_for_execution()
        bootstrap = Path(code.get_unzipped_code_location()) / "bootstrap"
        if bootstrap.exists():
            bootstrap.chmod(bootstrap.stat().st_mode | 0o755)

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        pass

    @classmethod
    def validate_environment(cls) -> bool:
        return True
