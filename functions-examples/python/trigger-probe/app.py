"""An event function that says what started it, and publishes on demand:
the Python twin of the Rust `trigger-probe`.

- Every invocation answers (and prints, as `probe saw {json}`) a JSON
  document: the request id, the trigger (`null` over HTTP or the API, else
  `{"kind": "cron" | "mqtt", ...}`), the payload as text and the content
  type.
- The payload `publish N TOPIC [QOS]` publishes `N` messages to `TOPIC`
  (payloads `0` to `N-1`, QoS 1 unless `QOS` is 0) with `floe.publish`, and
  answers how many were queued, and the first error, if one stopped it.
- The payload `fail` fails the invocation (so it is retried); `sleep:N`
  answers after N milliseconds.

Deploy it with triggers and a broker to publish to:

    floe deploy probe app.wasm \\
      --set 'triggers=[{"kind":"mqtt","name":"in","broker":"mqtt://127.0.0.1:1883","topics":["in/#"]}]' \\
      --set publish=mqtt://127.0.0.1:1883
"""

import json
import time

import floe


def publish_many(command: str) -> dict:
    words = command.split()
    n = int(words[0]) if words and words[0].isdigit() else 0
    topic = words[1] if len(words) > 1 else "probe/out"
    qos = 0 if len(words) > 2 and words[2] == "0" else 1
    published, error = 0, None
    for i in range(n):
        try:
            floe.publish(topic, str(i), qos=qos)
        except floe.PublishError as e:
            error = str(e)
            break
        published += 1
    return {"published": published, "error": error}


@floe.event
def handle(payload: bytes, ctx: floe.Context) -> bytes:
    text = payload.decode("utf-8", errors="replace")
    if text == "fail":
        raise RuntimeError("asked to fail")
    if text.startswith("sleep:") and text[6:].isdigit():
        time.sleep(int(text[6:]) / 1000)
    if text.startswith("publish "):
        return json.dumps(publish_many(text.removeprefix("publish "))).encode()
    trigger = ctx.trigger
    seen = json.dumps(
        {
            "request_id": ctx.request_id,
            "trigger": None if trigger is None else trigger.to_dict(),
            "payload": text,
            "content_type": ctx.content_type,
        }
    )
    print(f"probe saw {seen}", flush=True)
    return seen.encode()
