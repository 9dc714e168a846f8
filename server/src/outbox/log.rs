//! An outbox on disk: one append-only log of messages and one mark, the
//! sequence number of the last message the broker took.
//!
//! Files, in `<data_dir>/outbox/{function}/`: `log` holds records of
//! `[body length: u32 LE][CRC-32 of body: u32 LE][body]`, the body being
//! `[seq: u64][queued at, ms: u64][qos: u8][retain: u8][topic length: u16]
//! [topic][payload]` (integers little-endian); `sent` holds the mark as
//! text. An append is synced before the publish returns. A record cut short
//! by a crash (or damaged) ends the log: it and anything after it are cut
//! off when the log is opened.

use crate::store::fsio;
use bytes::Bytes;
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

/// One message of an outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Its place in the outbox: messages go to the broker in this order.
    pub seq: u64,
    /// When it was queued, ms since the Unix epoch.
    pub queued_at_ms: u64,
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: Bytes,
    /// 0 or 1.
    pub qos: u8,
    /// The retain flag.
    pub retain: bool,
}

impl Message {
    /// What it counts against `outbox_max_bytes`.
    pub fn size(&self) -> u64 {
        (self.topic.len() + self.payload.len()) as u64
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let topic = self.topic.as_bytes();
        let body_len = 8 + 8 + 1 + 1 + 2 + topic.len() + self.payload.len();
        let start = out.len();
        out.extend_from_slice(&(body_len as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.queued_at_ms.to_le_bytes());
        out.push(self.qos);
        out.push(u8::from(self.retain));
        out.extend_from_slice(&(topic.len() as u16).to_le_bytes());
        out.extend_from_slice(topic);
        out.extend_from_slice(&self.payload);
        let crc = crc32fast::hash(&out[start + 8..]);
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes the record at the start of `bytes`: the message and the
    /// record's length, or `None` when it is cut short or damaged.
    fn decode(bytes: &[u8]) -> Option<(Self, usize)> {
        let body_len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
        let body = bytes.get(8..8 + body_len)?;
        if body_len < 20 || crc32fast::hash(body) != crc {
            return None;
        }
        let seq = u64::from_le_bytes(body[..8].try_into().ok()?);
        let queued_at_ms = u64::from_le_bytes(body[8..16].try_into().ok()?);
        let qos = body[16];
        let retain = body[17] != 0;
        let topic_len = u16::from_le_bytes(body[18..20].try_into().ok()?) as usize;
        let topic = std::str::from_utf8(body.get(20..20 + topic_len)?).ok()?;
        let payload = Bytes::copy_from_slice(&body[20 + topic_len..]);
        Some((
            Self {
                seq,
                queued_at_ms,
                topic: topic.to_owned(),
                payload,
                qos,
                retain,
            },
            8 + body_len,
        ))
    }
}

/// The files of one outbox.
#[derive(Debug)]
pub(super) struct Log {
    dir: PathBuf,
    tmp: PathBuf,
    file: File,
    /// Bytes in `log`.
    len: u64,
}

/// What an outbox held when it was opened.
#[derive(Debug)]
pub(super) struct Opened {
    /// The log, ready to append to.
    pub(super) log: Log,
    /// Messages the broker has not taken, in order.
    pub(super) pending: Vec<Message>,
    /// The next message's sequence number.
    pub(super) next_seq: u64,
}

impl Log {
    /// Opens (or creates) the outbox in `dir`; `tmp` is the data
    /// directory's scratch directory for atomic writes.
    pub(super) fn open(dir: &Path, tmp: &Path) -> io::Result<Opened> {
        fsio::create_private_dir(dir)?;
        let sent = match std::fs::read_to_string(dir.join("sent")) {
            Ok(text) => text.trim().parse::<u64>().unwrap_or(0),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let path = dir.join("log");
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut at = 0;
        let mut pending = Vec::new();
        let mut next_seq = sent + 1;
        while at < bytes.len() {
            let Some((message, len)) = Message::decode(&bytes[at..]) else {
                tracing::warn!(outbox = %dir.display(), kept = at, dropped = bytes.len() - at, "an outbox log ends in a damaged or unfinished record: cut off");
                file.set_len(at as u64)?;
                file.sync_all()?;
                break;
            };
            at += len;
            next_seq = next_seq.max(message.seq + 1);
            if message.seq > sent {
                pending.push(message);
            }
        }
        file.seek(SeekFrom::End(0))?;
        fsio::sync_parent(&path)?;
        Ok(Opened {
            log: Self {
                dir: dir.to_owned(),
                tmp: tmp.to_owned(),
                len: at as u64,
                file,
            },
            pending,
            next_seq,
        })
    }

    /// Appends `messages` and syncs them.
    pub(super) fn append(&mut self, messages: &[Message]) -> io::Result<()> {
        let mut out = Vec::new();
        for m in messages {
            m.encode(&mut out);
        }
        if let Err(e) = self
            .file
            .write_all(&out)
            .and_then(|()| self.file.sync_data())
        {
            // A partial record must not stay in front of later ones.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += out.len() as u64;
        Ok(())
    }

    /// Records that the broker took every message up to `seq`. When none is
    /// left (`rest` is empty) the log starts over; when the taken part is
    /// large, the rest is rewritten into a new log.
    pub(super) fn mark_sent(&mut self, seq: u64, rest: &[Message]) -> io::Result<()> {
        fsio::write_atomic(
            &self.tmp,
            &self.dir.join("sent"),
            seq.to_string().as_bytes(),
        )?;
        const REWRITE_PAST: u64 = 64 << 20;
        if rest.is_empty() {
            self.file.set_len(0)?;
            self.file.sync_all()?;
            self.len = 0;
        } else if self.len > REWRITE_PAST {
            let mut out = Vec::new();
            for m in rest {
                m.encode(&mut out);
            }
            if (out.len() as u64) < self.len / 2 {
                let path = self.dir.join("log");
                fsio::write_atomic(&self.tmp, &path, &out)?;
                self.file = OpenOptions::new().read(true).append(true).open(&path)?;
                self.len = out.len() as u64;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64, topic: &str, payload: &[u8]) -> Message {
        Message {
            seq,
            queued_at_ms: 7,
            topic: topic.into(),
            payload: Bytes::copy_from_slice(payload),
            qos: 1,
            retain: seq.is_multiple_of(2),
        }
    }

    #[test]
    fn reopened_logs_keep_what_was_not_sent_and_cut_torn_records() {
        let root = std::env::temp_dir().join(format!("floe-outbox-{}", std::process::id()));
        let (dir, tmp) = (root.join("f"), root.join("tmp"));
        std::fs::create_dir_all(&tmp).unwrap();
        let opened = Log::open(&dir, &tmp).unwrap();
        assert!(opened.pending.is_empty());
        assert_eq!(opened.next_seq, 1);
        let mut log = opened.log;
        let all: Vec<Message> = (1..=5).map(|i| message(i, "t/a", &[i as u8; 3])).collect();
        log.append(&all[..3]).unwrap();
        log.append(&all[3..]).unwrap();
        log.mark_sent(2, &all[2..]).unwrap();
        drop(log);
        // A torn record at the end is cut off.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join("log"))
            .unwrap();
        f.write_all(&[40, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let opened = Log::open(&dir, &tmp).unwrap();
        assert_eq!(opened.pending, all[2..].to_vec());
        assert_eq!(opened.next_seq, 6);
        let mut log = opened.log;
        log.append(&[message(6, "t/b", b"x")]).unwrap();
        log.mark_sent(6, &[]).unwrap();
        drop(log);
        let opened = Log::open(&dir, &tmp).unwrap();
        assert!(opened.pending.is_empty());
        assert_eq!(opened.next_seq, 7);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
