//! The server's log: lines on stderr, in the form the reader wants.
//!
//! - On a terminal: timestamps and colours.
//! - Under systemd, when stderr is the journal (`JOURNAL_STREAM` names it):
//!   no timestamp (journald stamps each line) and a `<N>` syslog priority
//!   before each line, which journald reads as the entry's priority, so
//!   `journalctl -u floe -p warning` shows warnings and errors.
//! - Anywhere else: timestamped plain text.
//!
//! `FLOE_LOG_FORMAT` (`text` or `journald`) overrides the choice.

use floe::config::env;
use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_subscriber::fmt::format::{DefaultFields, Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Lines waiting for the writer thread; past this many, lines are dropped
/// rather than waited for.
const LOG_QUEUE: usize = 64 * 1024;

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    /// Timestamped text, coloured on a terminal.
    Text,
    /// For journald: a syslog priority prefix and no timestamp.
    Journald,
}

impl LogFormat {
    /// The format for this process: `FLOE_LOG_FORMAT` when set to a known
    /// value, else journald when stderr is the journal's stream.
    pub(crate) fn detect() -> Self {
        match std::env::var(env::LOG_FORMAT).ok().as_deref() {
            Some("journald") => return Self::Journald,
            Some("text") => return Self::Text,
            _ => {}
        }
        let stream = std::env::var("JOURNAL_STREAM").ok();
        if stream.is_some_and(|s| stderr_is(&s)) {
            Self::Journald
        } else {
            Self::Text
        }
    }
}

/// Whether stderr is the file `JOURNAL_STREAM` names (`DEVICE:INODE`): the
/// variable is inherited by children whose stderr went elsewhere, so its
/// presence alone is not enough.
fn stderr_is(journal_stream: &str) -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some((dev, ino)) = journal_stream.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// The syslog priority journald gives a line of this level.
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Writes each event as `F` writes it, with its `<N>` priority before every
/// line: journald takes each line for an entry of its own, so a message of
/// several lines (a wasm backtrace) keeps its priority on all of them.
struct Prioritized<F>(F);

impl<S, N, F> FormatEvent<S, N> for Prioritized<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut text = String::new();
        self.0.format_event(ctx, Writer::new(&mut text), event)?;
        let priority = priority(*event.metadata().level());
        for line in text.lines() {
            writeln!(writer, "<{priority}>{line}")?;
        }
        Ok(())
    }
}

/// Sets the process's log up: stderr through a writer thread, so that a
/// slow or blocked stderr (a full pipe, a stalled log collector) never
/// blocks a worker thread. The guard flushes the lines still queued when
/// dropped.
pub(crate) fn init() -> WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_QUEUE)
        .thread_name("floe-log")
        .finish(std::io::stderr());
    let filter = tracing_subscriber::EnvFilter::try_from_env(env::LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match LogFormat::detect() {
        LogFormat::Journald => builder
            .with_ansi(false)
            .event_format(Prioritized(Format::default().without_time()))
            .fmt_fields(DefaultFields::new())
            .with_writer::<NonBlocking>(writer)
            .init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(writer)
            .init(),
    }
    guard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority(Level::ERROR), 3);
        assert_eq!(priority(Level::WARN), 4);
        assert_eq!(priority(Level::INFO), 6);
        assert_eq!(priority(Level::DEBUG), 7);
    }

    #[test]
    fn stderr_is_the_journal_when_journal_stream_names_it() {
        use std::os::fd::AsFd;
        use std::os::unix::fs::MetadataExt;
        let fd = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .expect("stderr");
        let m = std::fs::File::from(fd).metadata().expect("fstat");
        assert!(stderr_is(&format!("{}:{}", m.dev(), m.ino())));
        assert!(!stderr_is(&format!("{}:{}", m.dev(), m.ino() + 1)));
    }

    #[test]
    fn a_journal_stream_that_is_not_stderr_is_not_the_journal() {
        assert!(!stderr_is("not a pair"));
        assert!(!stderr_is("x:y"));
        assert!(!stderr_is("0:0"));
    }
}
