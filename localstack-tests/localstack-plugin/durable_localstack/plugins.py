"""Entry points LocalStack loads through plux (see pyproject.toml)."""

from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin


class HostRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    """Selected with LAMBDA_RUNTIME_EXECUTOR=host."""

    name = "host"

    def load(self, *args, **kwargs):
        from durable_localstack.host_executor import HostRuntimeExecutor

        return HostRuntimeExecutor
