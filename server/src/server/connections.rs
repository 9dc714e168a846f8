//! The open connections of one listener: how many each client address holds,
//! which have not sent a request yet (and can be closed to make room), and
//! each connection's activity, which its watchdog reads.
//!
//! Sockets that send nothing are the cheapest attack on a server: they cost
//! the client a file descriptor and the server a connection slot. Here they
//! lose: a connection that has not completed a request head within
//! `header_timeout` is closed, and when the listener is full (or a client is
//! at `max_connections_per_ip`) its oldest connection with no request in
//! flight (one that never sent a request first, else an idle keep-alive one)
//! is closed at once so that a client with a real request gets in. Finding
//! it scans the open connections, which happens only at the cap; serving a
//! request costs nothing here beyond the connection's own counters.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a connection's watchdog reads: whether it ever completed a request
/// head, the requests in flight, and when the last one ended.
#[derive(Debug)]
pub(crate) struct Activity {
    born: Instant,
    started: AtomicBool,
    in_flight: AtomicU32,
    /// Milliseconds after `born` when the connection last went idle.
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            born: Instant::now(),
            started: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    /// A request head arrived.
    pub(crate) fn request_started(&self) {
        self.started.store(true, Relaxed);
        self.in_flight.fetch_add(1, Relaxed);
    }

    /// A request was answered (its response head sent).
    pub(crate) fn request_ended(&self) {
        self.idle_since_ms
            .store(self.born.elapsed().as_millis() as u64, Relaxed);
        self.in_flight.fetch_sub(1, Relaxed);
    }

    /// Whether any request head ever arrived.
    pub(crate) fn started(&self) -> bool {
        self.started.load(Relaxed)
    }

    /// When the connection went idle, if it is.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        (self.in_flight.load(Relaxed) == 0)
            .then(|| self.born + std::time::Duration::from_millis(self.idle_since_ms.load(Relaxed)))
    }

    /// When it was accepted.
    pub(crate) fn born(&self) -> Instant {
        self.born
    }
}

/// One open connection, as eviction sees it.
#[derive(Debug)]
struct Open {
    ip: IpAddr,
    close: CancellationToken,
    activity: Arc<Activity>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    per_ip: HashMap<IpAddr, usize>,
    /// Every open connection, oldest first.
    open: BTreeMap<u64, Open>,
}

impl State {
    /// Closes the oldest connection (of `ip`, when given) that has no
    /// request in flight: one that never sent a request first, else an idle
    /// keep-alive one. Whether there was one.
    fn evict(&mut self, ip: Option<IpAddr>) -> bool {
        let candidates = || {
            self.open
                .iter()
                .filter(move |(_, o)| ip.is_none_or(|ip| o.ip == ip))
                .filter(|(_, o)| !o.close.is_cancelled())
        };
        let victim = candidates()
            .find(|(_, o)| !o.activity.started())
            .or_else(|| candidates().find(|(_, o)| o.activity.idle_since().is_some()))
            .map(|(id, _)| *id);
        let Some(id) = victim else { return false };
        if let Some(o) = self.open.get(&id) {
            o.close.cancel();
        }
        true
    }
}

/// The connections of one listener.
#[derive(Debug)]
pub(crate) struct Connections {
    per_ip_cap: usize,
    state: Mutex<State>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AtCap;

impl Connections {
    /// Connections with at most `per_ip_cap` per client address (0: no cap).
    pub(crate) fn new(per_ip_cap: usize) -> Arc<Self> {
        Arc::new(Self {
            per_ip_cap,
            state: Mutex::new(State::default()),
        })
    }

    /// Admits a connection from `ip`, closing the client's oldest connection
    /// with no request in flight when it is at its cap. Refused when all of
    /// its connections are serving.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, AtCap> {
        let mut state = self.state.lock();
        let held = state.per_ip.get(&ip).copied().unwrap_or(0);
        if self.per_ip_cap > 0 && held >= self.per_ip_cap {
            // Connections already told to close count until they are gone.
            let closing = state
                .open
                .values()
                .filter(|o| o.ip == ip && o.close.is_cancelled())
                .count();
            if held.saturating_sub(closing) >= self.per_ip_cap && !state.evict(Some(ip)) {
                return Err(AtCap);
            }
        }
        *state.per_ip.entry(ip).or_default() += 1;
        state.next_id += 1;
        let id = state.next_id;
        let close = CancellationToken::new();
        let activity = Arc::new(Activity::new());
        state.open.insert(
            id,
            Open {
                ip,
                close: close.clone(),
                activity: activity.clone(),
            },
        );
        Ok(Admitted {
            connections: self.clone(),
            id,
            ip,
            close,
            activity,
        })
    }

    /// Closes the listener's oldest connection with no request in flight;
    /// whether there was one.
    pub(crate) fn evict_oldest_idle(&self) -> bool {
        self.state.lock().evict(None)
    }

    fn closed(&self, id: u64, ip: IpAddr) {
        let mut state = self.state.lock();
        state.open.remove(&id);
        if let Some(n) = state.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                state.per_ip.remove(&ip);
            }
        }
    }
}

/// One admitted connection; dropping it gives back its place.
#[derive(Debug)]
pub(crate) struct Admitted {
    connections: Arc<Connections>,
    id: u64,
    ip: IpAddr,
    /// Cancelled when the connection is to be closed to make room.
    pub(crate) close: CancellationToken,
    /// Its activity, updated by its service.
    pub(crate) activity: Arc<Activity>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.connections.closed(self.id, self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_at_its_cap_loses_its_oldest_idle_connection() {
        let c = Connections::new(2);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let first = c.admit(ip).unwrap();
        let second = c.admit(ip).unwrap();
        let elsewhere = c.admit(other).unwrap();
        // A third from the same address closes the first.
        let third = c.admit(ip).unwrap();
        assert!(first.close.is_cancelled());
        assert!(!second.close.is_cancelled());
        assert!(!elsewhere.close.is_cancelled());
        drop(first);
        // Both serving: nothing to close, refused.
        second.activity.request_started();
        third.activity.request_started();
        assert_eq!(c.admit(ip).err(), Some(AtCap));
        // A keep-alive connection between requests may go.
        second.activity.request_ended();
        let fourth = c.admit(ip).unwrap();
        assert!(second.close.is_cancelled());
        drop(second);
        // The listener-wide eviction takes a never-used one first.
        third.activity.request_ended();
        assert!(c.evict_oldest_idle());
        assert!(elsewhere.close.is_cancelled());
        assert!(!third.close.is_cancelled());
        drop(fourth);
    }
}
