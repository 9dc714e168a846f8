//! The epoch ticker: one thread per engine that advances wasmtime's epoch at a
//! fixed interval. Guest code checks the epoch at loop heads and function
//! entries, which is how timeouts interrupt it and how long-running guests
//! yield. The thread stops and is joined when the [`EpochThread`] is dropped.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::Engine;

/// Owns the ticker thread.
#[derive(Debug)]
pub struct EpochThread {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochThread {
    /// Starts ticking `engine` every `tick`.
    pub fn start(engine: &Engine, tick: Duration) -> std::io::Result<Self> {
        let engine = engine.weak();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("floe-epoch".into())
            .spawn(move || {
                // `recv_timeout` doubles as the sleep: a message or a hang-up
                // ends the loop at once.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EpochThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
