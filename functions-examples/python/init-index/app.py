"""An init-heavy function: `init` indexes the text it ships (every word to
the positions where it occurs) once; requests look words up. With floe's
default `preinit = "snapshot"` the index is built at deploy and every
instance starts with it."""

import floe
from corpus import TEXT

INDEX: dict[str, list[int]] = {}
STATE = {"init_runs": 0}


@floe.init
def build_index() -> None:
    for position, word in enumerate(TEXT.split()):
        INDEX.setdefault(word.strip(".,;:!?\"'()").lower(), []).append(position)
    STATE["init_runs"] += 1


@floe.http
def handle(request: floe.Request):
    word = request.query.get("word", "").lower()
    return {
        "word": word,
        "positions": INDEX.get(word, [])[:10],
        "count": len(INDEX.get(word, [])),
        "words_indexed": len(INDEX),
        "init_runs": STATE["init_runs"],
    }
