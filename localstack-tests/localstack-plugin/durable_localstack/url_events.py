"""Function URL events with the raw (still percent-encoded) path, as AWS delivers them.

LocalStack builds `rawPath` from the decoded request path, so a handler that decodes the path
once (as it must on AWS) would decode it twice locally. This patch keeps the escapes.
"""

from __future__ import annotations

import logging

from localstack.runtime import hooks

LOG = logging.getLogger(__name__)


@hooks.on_infra_ready()
def keep_raw_url_paths():
    from localstack.services.lambda_ import urlrouter
    from rolo.request import get_raw_path

    original = urlrouter.event_for_lambda_url
    if getattr(original, "_durable_raw_path", False):
        return

    def event_for_lambda_url(api_id, request):
        event = original(api_id, request)
        raw = get_raw_path(request)
        event["rawPath"] = raw
        event["requestContext"]["http"]["path"] = raw
        return event

    event_for_lambda_url._durable_raw_path = True
    urlrouter.event_for_lambda_url = event_for_lambda_url
    LOG.info("Function URL events carry the raw path")
