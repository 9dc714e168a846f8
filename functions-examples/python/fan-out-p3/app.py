"""A WASI 0.3 HTTP function in Python (`floe-py build --wasi p3`): one
instance serves many requests at once, each `await` letting the others go
on.

- `GET /?ms=N` awaits a timer for N ms, then answers;
- `GET /?url=U` fetches U (`await floe.fetch_async`) and answers its status
  and length, or 502 with the fetch error;
- `POST /` with a body answers its length.

Every answer names the number of requests in flight on this instance when
it began, which shows the sharing."""

import floe

IN_FLIGHT = [0]


@floe.http
async def handle(request: floe.Request) -> floe.Response:
    IN_FLIGHT[0] += 1
    try:
        ms = int(request.query.get("ms", "0"))
        if ms:
            await floe.sleep(ms / 1000)
        url = request.query.get("url")
        if url:
            try:
                reply = await floe.fetch_async(url, timeout=10)
            except floe.FetchError as e:
                return floe.Response(f"fetch failed: {e}\n", 502)
            return floe.Response(f"status={reply.status} bytes={len(reply.body)}\n")
        if request.method == "POST":
            return floe.Response(f"got {len(request.body)} bytes\n")
        return floe.Response(f"hello from python (WASI 0.3), slept {ms} ms\n")
    finally:
        IN_FLIGHT[0] -= 1
