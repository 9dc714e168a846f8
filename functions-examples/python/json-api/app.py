"""A JSON API with routing: notes kept in memory, per instance.

    GET    /notes        200 [{"id": 1, "text": "..."}, ...]
    POST   /notes        {"text": "..."} -> 201 {"id": 1, "text": "..."}
                         (400 {"error": ...} for bad JSON or a missing text)
    GET    /notes/{id}   200 the note, or 404 {"error": "not found"}
    DELETE /notes/{id}   204, or 404 {"error": "not found"}

A known path with another method is answered 405 with an `allow` header;
any other path 404 {"error": "no route"}. Ids count 1, 2, 3... in each
instance (deploy with `max_instances = 1` to keep one store)."""

import re

import floe

NOTES: dict[int, dict] = {}
NEXT_ID = [1]


def error(status: int, message: str, headers=None) -> floe.Response:
    return floe.Response.json({"error": message}, status, headers)


def list_notes(request: floe.Request) -> floe.Response:
    return floe.Response.json(list(NOTES.values()))


def create_note(request: floe.Request) -> floe.Response:
    try:
        data = request.json()
    except ValueError:
        return error(400, "the body is not valid JSON")
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        return error(400, 'expected a JSON object with a string "text"')
    note = {"id": NEXT_ID[0], "text": data["text"]}
    NEXT_ID[0] += 1
    NOTES[note["id"]] = note
    return floe.Response.json(note, 201)


def get_note(request: floe.Request, id: int) -> floe.Response:
    note = NOTES.get(id)
    return floe.Response.json(note) if note else error(404, "not found")


def delete_note(request: floe.Request, id: int) -> floe.Response:
    if NOTES.pop(id, None) is None:
        return error(404, "not found")
    return floe.Response(b"", 204)


# (path pattern, {method: handler}); the pattern's groups are the handler's
# arguments after the request.
ROUTES = [
    (re.compile(r"/notes"), {"GET": list_notes, "POST": create_note}),
    (re.compile(r"/notes/([0-9]+)"), {"GET": get_note, "DELETE": delete_note}),
]


@floe.http
def handle(request: floe.Request) -> floe.Response:
    path = request.path.partition("?")[0]
    for pattern, methods in ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        handler = methods.get(request.method)
        if handler is None:
            return error(405, "method not allowed", {"allow": ", ".join(methods)})
        return handler(request, *(int(g) for g in match.groups()))
    return error(404, "no route")
