"""LocalStack plugins that let durable-lambda run against LocalStack on a machine without Docker."""
