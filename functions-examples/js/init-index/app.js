// An init-heavy function: `init` indexes the text file it ships (every word
// to the positions where it occurs) once; requests look words up. With
// floe's default `preinit = "snapshot"` the index is built at deploy and
// every instance starts with it.

import corpus from './corpus.txt';

const index = new Map();
let initRuns = 0;

export function init() {
  let position = 0;
  for (const raw of corpus.split(/\s+/)) {
    if (raw === '') {
      continue;
    }
    const word = raw.replace(/[.,;:!?"'()]/g, '').toLowerCase();
    let positions = index.get(word);
    if (!positions) {
      positions = [];
      index.set(word, positions);
    }
    positions.push(position);
    position += 1;
  }
  initRuns += 1;
}

export function fetch(request) {
  const word = (new URL(request.url).searchParams.get('word') ?? '').toLowerCase();
  const positions = index.get(word) ?? [];
  return {
    word,
    positions: positions.slice(0, 10),
    count: positions.length,
    words_indexed: index.size,
    init_runs: initRuns,
  };
}
