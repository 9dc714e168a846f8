//! An init-heavy function. Its `init` does real work once: it sieves the
//! primes below fifty million (into a 6 MB bit set) and indexes every word of
//! the text it ships
//! (`data/harbour.txt`). With floe's default `preinit = "snapshot"` that
//! happens at deploy, and every instance starts with the tables built; with
//! `preinit = "instance"` each instance builds them before its first request.
//!
//! - `GET /prime?n=N`: whether N is prime, from the table;
//! - `GET /word?w=W`: the lines of the text that contain W;
//! - `GET /stats`: how long `init` took, when it ran, and how often in this
//!   instance;
//! - `GET /random`: a random number taken now (instances never share one).
//!
//! A host that does not call `init` (one that knows nothing of floe's
//! lifecycle) gets the same answers: the tables are then built by the first
//! request of each instance.

use floe_sdk::http::{Body, Request, Response, Result};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

floe_sdk::http_function!(handle);
floe_sdk::lifecycle! { init: init }

const TEXT: &str = include_str!("../data/harbour.txt");
const PRIME_LIMIT: usize = 50_000_000;

/// One bit per number: set when the number is composite.
struct BitSet(Vec<u64>);

impl BitSet {
    fn new(len: usize) -> Self {
        Self(vec![0; len.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

struct Tables {
    composite: BitSet,
    primes: usize,
    words: HashMap<String, Vec<usize>>,
    init_ms: u128,
    init_at_ms: u128,
}

static TABLES: OnceLock<Tables> = OnceLock::new();
static INIT_RUNS: AtomicU32 = AtomicU32::new(0);

fn init() -> std::result::Result<(), String> {
    let tables = build()?;
    TABLES
        .set(tables)
        .map_err(|_| "init ran twice in one instance".to_string())
}

fn build() -> std::result::Result<Tables, String> {
    let start = Instant::now();
    let mut composite = BitSet::new(PRIME_LIMIT);
    composite.set(0);
    composite.set(1);
    let mut i = 2;
    while i * i < PRIME_LIMIT {
        if !composite.get(i) {
            let mut j = i * i;
            while j < PRIME_LIMIT {
                composite.set(j);
                j += i;
            }
        }
        i += 1;
    }
    let primes = (0..PRIME_LIMIT).filter(|&n| !composite.get(n)).count();
    let mut words: HashMap<String, Vec<usize>> = HashMap::new();
    for (n, line) in TEXT.lines().enumerate() {
        for word in line
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let lines = words.entry(word.to_lowercase()).or_default();
            if lines.last() != Some(&n) {
                lines.push(n);
            }
        }
    }
    if words.is_empty() {
        return Err("the shipped text has no words".into());
    }
    INIT_RUNS.fetch_add(1, Ordering::Relaxed);
    Ok(Tables {
        composite,
        primes,
        words,
        init_ms: start.elapsed().as_millis(),
        init_at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis()),
    })
}

fn query<'a>(request: &'a Request<Body>, key: &str) -> Option<&'a str> {
    request
        .uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

async fn handle(request: Request<Body>) -> Result<Response<Body>> {
    let tables = match TABLES.get() {
        Some(tables) => tables,
        None => {
            let built = build().map_err(|e| anyhow_error(&e))?;
            TABLES.get_or_init(|| built)
        }
    };
    let answer = match request.uri().path() {
        "/prime" => {
            let n: usize = query(&request, "n")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if n < PRIME_LIMIT {
                let not = if tables.composite.get(n) { "not " } else { "" };
                format!("{n} is {not}prime\n")
            } else {
                format!("{n} is past the table ({PRIME_LIMIT})\n")
            }
        }
        "/word" => {
            let word = query(&request, "w").unwrap_or("").to_lowercase();
            let lines: Vec<&str> = tables
                .words
                .get(&word)
                .map(|ns| ns.iter().filter_map(|n| TEXT.lines().nth(*n)).collect())
                .unwrap_or_default();
            format!("{}\n", lines.join("\n"))
        }
        "/random" => {
            let mut bytes = [0u8; 8];
            floe_sdk::wstd::rand::get_random_bytes(&mut bytes);
            format!("{}\n", u64::from_le_bytes(bytes))
        }
        _ => format!(
            "{{\"init_ms\":{},\"init_at_ms\":{},\"init_runs\":{},\"primes\":{},\"words\":{}}}\n",
            tables.init_ms,
            tables.init_at_ms,
            INIT_RUNS.load(Ordering::Relaxed),
            tables.primes,
            tables.words.len(),
        ),
    };
    Ok(Response::new(answer.into()))
}

fn anyhow_error(message: &str) -> floe_sdk::http::Error {
    floe_sdk::http::Error::msg(message.to_owned())
}
