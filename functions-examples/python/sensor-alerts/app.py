"""Sensor alerts on a gateway: readings arrive over MQTT, alerts go out over
MQTT, and a summary goes to an HTTP endpoint on a schedule (the Python twin
of the Rust `sensor-alerts`).

Deploy it with two triggers (see the README):

- an MQTT trigger on `sensors/+/temperature`: each message is a reading,
  its payload a number (`21.5`). The function keeps the last `window`
  readings of each sensor (state that lives in the reused instance) and,
  when their average crosses `threshold` upwards, publishes
  `{"sensor": ..., "average": ..., "threshold": ...}` to `alerts/{sensor}`
  (QoS 1, through the durable outbox). It publishes again only after the
  average went back under the threshold.
- a cron trigger: it POSTs `{"sensors": {id: {"readings": n, "average": a,
  "alerting": bool}}}` to `summary_url` with `Authorization: Bearer
  {token}`, the `token` being a secret. A missing variable or an answer
  other than 2xx fails the invocation, so that it is retried.

Invoked by hand (no trigger), `{"topic": "sensors/s1/temperature", "value":
41}` is a reading; anything else sends the summary now.

Variables: `threshold` (default 40), `window` (default 5), `summary_url`.
Secret: `token`. Keep `max_instances=1` so that one instance sees every
reading (the window is per instance).
"""

import json
from collections import deque

import floe


class Sensor:
    def __init__(self) -> None:
        self.readings: deque = deque()
        self.alerting = False

    def average(self) -> float:
        return sum(self.readings) / len(self.readings) if self.readings else 0.0


SENSORS: dict[str, Sensor] = {}


def setting(key: str, default, kind):
    try:
        return kind(floe.config(key, "").strip())
    except ValueError:
        return default


def reading(topic: str, payload: bytes) -> bytes:
    levels = topic.split("/")
    if len(levels) < 2 or levels[0] != "sensors" or not levels[1]:
        raise floe.InvalidInput(f"{topic}: not sensors/{{id}}/...")
    sensor = levels[1]
    try:
        value = float(payload.decode().strip())
    except (UnicodeDecodeError, ValueError):
        raise floe.InvalidInput("a reading is a number") from None
    threshold = setting("threshold", 40.0, float)
    window = max(setting("window", 5, int), 1)
    state = SENSORS.setdefault(sensor, Sensor())
    state.readings.append(value)
    while len(state.readings) > window:
        state.readings.popleft()
    average = state.average()
    crossed = average > threshold and not state.alerting
    state.alerting = average > threshold
    if not crossed:
        return b"ok"
    alert = {"sensor": sensor, "average": average, "threshold": threshold}
    floe.publish(f"alerts/{sensor}", json.dumps(alert), qos=1)
    return f"alert {sensor} {average}".encode()


def summary() -> bytes:
    url = floe.config("summary_url")
    if url is None:
        raise RuntimeError("the summary_url variable is not set")
    token = floe.config("token")
    if token is None:
        raise RuntimeError("the token secret is not set")
    sensors = {
        id: {"readings": len(s.readings), "average": s.average(), "alerting": s.alerting}
        for id, s in sorted(SENSORS.items())
    }
    reply = floe.fetch(
        url,
        method="POST",
        body=json.dumps({"sensors": sensors}),
        headers=[
            ("content-type", "application/json"),
            ("authorization", f"Bearer {token}"),
        ],
    )
    if not 200 <= reply.status <= 299:
        raise RuntimeError(f"the summary endpoint answered {reply.status}")
    return b"summary sent"


@floe.event
def handle(payload: bytes, ctx: floe.Context) -> bytes:
    fired = ctx.trigger
    if fired is not None and fired.kind == "mqtt":
        return reading(fired.topic, payload)
    if fired is None:
        try:
            document = json.loads(payload)
        except ValueError:
            document = None
        if isinstance(document, dict) and "topic" in document:
            return reading(str(document["topic"]), str(document.get("value")).encode())
    return summary()
