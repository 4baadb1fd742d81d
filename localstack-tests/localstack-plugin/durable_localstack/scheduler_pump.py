"""Fires EventBridge Scheduler one-time schedules in LocalStack, which only stores them.

Every second the pump looks at every account's and region's schedules. An ENABLED schedule
with an `at(...)` expression that is due and a Lambda target is fired as AWS would: the target
function is invoked asynchronously (InvocationType=Event) through LocalStack's own Lambda API
with the target's `Input`, and the schedule is deleted if its ActionAfterCompletion is DELETE
(otherwise it stays, and is never fired again). An ENABLED `rate(N minute|minutes|hour|hours|
day|days)` schedule with a Lambda target is fired every N units, counted from when the pump
first saw it (EventBridge Scheduler starts a rate schedule when it is created); cron schedules
are left alone.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time

from localstack.runtime import hooks

LOG = logging.getLogger(__name__)

AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
UNIT_S = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
INTERVAL_S = 1.0

_fired: set[str] = set()
# When each rate schedule (by ARN and version) fires next (monotonic seconds).
_next_rate: dict[str, float] = {}
_started = threading.Event()


def _due(schedule, now: dt.datetime) -> bool:
    match = AT.match(schedule.schedule_expression or "")
    if not match or schedule.state != "ENABLED":
        return False
    tz = schedule.schedule_expression_timezone or "UTC"
    if tz != "UTC":
        LOG.warning("scheduler pump: only UTC schedules are fired, %s uses %s", schedule.arn, tz)
        return False
    at = dt.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    return at <= now


def _fire(account_id: str, region: str, group_name: str, schedule) -> None:
    from localstack.aws.connect import connect_to

    target = schedule.target or {}
    arn = target.get("Arn", "")
    if ":lambda:" not in arn:
        LOG.warning("scheduler pump: %s targets %s; only Lambda targets are fired", schedule.arn, arn)
        return
    client = connect_to(aws_access_key_id=account_id, region_name=region).lambda_
    client.invoke(FunctionName=arn, InvocationType="Event", Payload=(target.get("Input") or "{}").encode())
    LOG.info("scheduler pump: fired %s -> %s", schedule.arn, arn)


def _rate_due(schedule) -> bool:
    """Whether a rate schedule is due now; the first look only starts its clock."""
    match = RATE.match(schedule.schedule_expression or "")
    if not match or schedule.state != "ENABLED":
        return False
    period = int(match.group(1)) * UNIT_S[match.group(2)]
    key = f"{schedule.arn}|{schedule.schedule_expression}|{schedule.last_modified_date}"
    now = time.monotonic()
    due = _next_rate.setdefault(key, now + period)
    if now < due:
        return False
    _next_rate[key] = now + period
    return True


def pump_once() -> int:
    """Fires every due schedule once; returns how many fired."""
    from moto.scheduler.models import scheduler_backends

    now = dt.datetime.now(dt.timezone.utc)
    fired = 0
    for account_id, regions in list(scheduler_backends.items()):
        for region, backend in list(regions.items()):
            for group in list(backend.schedule_groups.values()):
                for schedule in list(group.schedules.values()):
                    if _rate_due(schedule):
                        try:
                            _fire(account_id, region, group.name, schedule)
                            fired += 1
                        except Exception:  # the next period fires again
                            LOG.exception("scheduler pump: firing %s failed", schedule.arn)
                        continue
                    key = f"{schedule.arn}|{schedule.schedule_expression}|{schedule.last_modified_date}"
                    if key in _fired or not _due(schedule, now):
                        continue
                    try:
                        _fire(account_id, region, group.name, schedule)
                    except Exception:  # a failed firing is retried next round, as AWS retries
                        LOG.exception("scheduler pump: firing %s failed", schedule.arn)
                        continue
                    fired += 1
                    if (schedule.action_after_completion or "NONE") == "DELETE":
                        try:
                            backend.delete_schedule(group.name, schedule.name)
                        except Exception:
                            LOG.exception("scheduler pump: deleting %s failed", schedule.arn)
                            _fired.add(key)
                    else:
                        _fired.add(key)
    return fired


def _loop() -> None:
    while True:
        try:
            pump_once()
        except Exception:
            LOG.exception("scheduler pump round failed")
        time.sleep(INTERVAL_S)


@hooks.on_infra_ready()
def start_scheduler_pump():
    if _started.is_set():
        return
    _started.set()
    threading.Thread(target=_loop, name="durable-scheduler-pump", daemon=True).start()
    LOG.info("scheduler pump started (every %.0f s)", INTERVAL_S)
