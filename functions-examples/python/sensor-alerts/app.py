"""Sensor alerts on a gateway: readings arrive over MQTT, alerts go out over
MQTT, and a summary goes to an HTTP endpoint on a schedule. The Python twin
of the Rust `sensor-alerts`: it answers, publishes and posts the same bytes.

Deploy it with two triggers (see the README):

- an MQTT trigger on `sensors/+/temperature`: each message is a reading,
  its payload a number (`21.5`). The function keeps the last `window`
  readings of each sensor (state that lives in the reused instance) and,
  when their average crosses `threshold` upwards, publishes
  `{"average": ..., "sensor": ..., "threshold": ...}` to `alerts/{sensor}`
  (QoS 1, through the durable outbox, with `floe.publish`). It publishes
  again only after the average went back under the threshold.
- a cron trigger: it POSTs `{"sensors": {id: {"alerting": bool, "average":
  a, "readings": n}}}` to `summary_url` with `Authorization: Bearer
  {token}`, the `token` being a secret (with `floe.fetch`). A missing
  variable or an answer other than 2xx fails the invocation, so that it is
  retried.

Invoked by hand (no trigger), `{"topic": "sensors/s1/temperature", "value":
41}` is a reading; anything else sends the summary now.

Variables: `threshold` (default 40), `window` (default 5), `summary_url`.
Secret: `token`. Keep `max_instances=1` so that one instance sees every
reading (the window is per instance).

JSON is written as the Rust example's serde_json writes it: keys in order,
no spaces, numbers as f64 (`40.0`, `0.00001`, `1e-6`, `1e+16`), a number
that is not finite as `null`.
"""

import json
import math
import re
from collections import deque
from typing import Any, Optional

import floe

# What Rust's `str::trim` takes off: the Unicode White_Space characters.
_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
# What Rust's `f64::from_str` reads.
_F64 = re.compile(
    r"[+-]?(?:inf|infinity|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?)",
    re.IGNORECASE | re.ASCII,
)
# What Rust's `usize::from_str` reads (a wasm32 `usize`: up to 2^32 - 1).
_USIZE = re.compile(r"\+?[0-9]+", re.ASCII)
_USIZE_MAX = 2**32 - 1
# serde_json's nesting limit: deeper documents are not JSON to it.
_MAX_DEPTH = 127
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_f64(text: Optional[str]) -> Optional[float]:
    """`text.trim().parse::<f64>().ok()`."""
    if text is None:
        return None
    text = text.strip(_WHITESPACE)
    return float(text) if _F64.fullmatch(text) else None


def parse_usize(text: Optional[str]) -> Optional[int]:
    """`text.trim().parse::<usize>().ok()`."""
    if text is None:
        return None
    text = text.strip(_WHITESPACE)
    if not _USIZE.fullmatch(text):
        return None
    n = int(text)
    return n if n <= _USIZE_MAX else None


def _decimal(x: float) -> tuple[str, int]:
    """A finite, positive `x` as its shortest digits `d` and exponent `e`:
    `x == d[0].d[1:] * 10**e`."""
    mantissa, _, exp = repr(x).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    e = int(exp or "0") + len(whole) - 1
    significant = digits.lstrip("0")
    e -= len(digits) - len(significant)
    return significant.rstrip("0"), e


def _fixed(digits: str, e: int) -> str:
    if e >= len(digits) - 1:
        return digits + "0" * (e - len(digits) + 1)
    if e >= 0:
        return f"{digits[: e + 1]}.{digits[e + 1 :]}"
    return "0." + "0" * (-e - 1) + digits


def json_number(x: float) -> str:
    """`x` as serde_json writes an f64: `40.0`, `0.5`, `0.00001`, `1e-6`,
    `1.5e+16`; `null` when it is not finite."""
    if not math.isfinite(x):
        return "null"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return sign + "0.0"
    digits, e = _decimal(abs(x))
    if -5 <= e <= 15:
        text = _fixed(digits, e)
        return sign + (text + ".0" if "." not in text else text)
    mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
    return f"{sign}{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def display(x: float) -> str:
    """`x` as Rust's `{}` writes an f64: `40`, `40.5`, `0.0000001`, `NaN`,
    `inf`."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return sign + "0"
    return sign + _fixed(*_decimal(abs(x)))


def json_string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


class Sensor:
    def __init__(self) -> None:
        self.readings: deque[float] = deque()
        self.alerting = False

    def average(self) -> float:
        if not self.readings:
            return 0.0
        total = -0.0  # summed in order, as Rust's `Iterator::sum` does
        for value in self.readings:
            total += value
        return total / len(self.readings)


# The state of every sensor seen, kept by the instance between invocations.
SENSORS: dict[str, Sensor] = {}


def threshold() -> float:
    value = parse_f64(floe.config("threshold"))
    return 40.0 if value is None else value


def window() -> int:
    value = parse_usize(floe.config("window"))
    return max(5 if value is None else value, 1)


def sensor_of(topic: str) -> Optional[str]:
    """`sensors/{id}/temperature` → `id`."""
    levels = topic.split("/")
    if len(levels) >= 2 and levels[0] == "sensors" and levels[1]:
        return levels[1]
    return None


def reading(topic: str, value: Optional[float]) -> bytes:
    sensor = sensor_of(topic)
    if sensor is None:
        raise floe.InvalidInput(f"{topic}: not sensors/{{id}}/...")
    if value is None:
        raise floe.InvalidInput("a reading is a number")
    limit = threshold()
    keep = window()
    state = SENSORS.setdefault(sensor, Sensor())
    state.readings.append(value)
    while len(state.readings) > keep:
        state.readings.popleft()
    average = state.average()
    crossed = average > limit and not state.alerting
    state.alerting = average > limit
    if not crossed:
        return b"ok"
    body = (
        f'{{"average":{json_number(average)},"sensor":{json_string(sensor)},'
        f'"threshold":{json_number(limit)}}}'
    )
    floe.publish(f"alerts/{sensor}", body, qos=1, retain=False)
    return f"alert {sensor} {display(average)}".encode()


def summary() -> bytes:
    url = floe.config("summary_url")
    if url is None:
        raise RuntimeError("the summary_url variable is not set")
    token = floe.config("token")
    if token is None:
        raise RuntimeError("the token secret is not set")
    sensors = ",".join(
        f'{json_string(id)}:{{"alerting":{"true" if s.alerting else "false"},'
        f'"average":{json_number(s.average())},"readings":{len(s.readings)}}}'
        for id, s in sorted(SENSORS.items())
    )
    try:
        reply = floe.fetch(
            url,
            method="POST",
            body=f'{{"sensors":{{{sensors}}}}}',
            headers=[
                ("content-type", "application/json"),
                ("authorization", f"Bearer {token}"),
            ],
        )
    except floe.FetchError as e:
        raise RuntimeError(f"posting the summary: {e}") from None
    if not 200 <= reply.status <= 299:
        raise RuntimeError(f"the summary endpoint answered {reply.status}")
    return b"summary sent"


def _utf8(payload: bytes) -> Optional[str]:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _f64(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range")
    return value


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _serde_accepts(value: Any, depth: int = 0) -> bool:
    """Whether serde_json takes what `json.loads` took: no string with a
    lone surrogate (`"\\ud800"`), no nesting deeper than 127."""
    if isinstance(value, str):
        return not _SURROGATE.search(value)
    if isinstance(value, (dict, list)):
        if depth >= _MAX_DEPTH:
            return False
        items = value.items() if isinstance(value, dict) else enumerate(value)
        return all(
            (not isinstance(k, str) or _serde_accepts(k)) and _serde_accepts(v, depth + 1)
            for k, v in items
        )
    return True


def json_document(payload: bytes) -> Any:
    """The payload as serde_json reads a JSON document (numbers as f64), or
    `None` when it is not one."""
    text = _utf8(payload)
    if text is None:
        return None
    try:
        value = json.loads(text, parse_float=_f64, parse_int=_f64, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return None
    return value if _serde_accepts(value) else None


@floe.event
def handle(payload: bytes, ctx: floe.Context) -> bytes:
    fired = ctx.trigger
    if fired is None:
        # Invoked by hand: `{"topic": "sensors/s1/temperature", "value": 41}`
        # is a reading; anything else sends the summary now.
        document = json_document(payload)
        if isinstance(document, dict) and "topic" in document:
            topic = document["topic"]
            value = document.get("value")
            return reading(
                topic if isinstance(topic, str) else "",
                value if isinstance(value, float) else None,
            )
        return summary()
    if fired.kind == "mqtt":
        return reading(fired.topic, parse_f64(_utf8(payload)))
    return summary()
