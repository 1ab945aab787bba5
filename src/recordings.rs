//! Recording files: a caller's words (a dialplan's `record` node) written
//! as an 8 kHz 16-bit mono WAV under `[recordings] dir`, named by a random
//! 128-bit token so that no name can be guessed, synced to disk before
//! its row goes in (the caller is told it is kept only after both), served
//! back to staff by token, and deleted after `retention_days` (the row
//! stays, marked purged).

use crate::config::RecordingsConfig;
use crate::media::session::StereoChunk;
use crate::tickets::store::{NewRecording, RecordingKind, Store, StoreError, StoredRecording};
use chrono::{DateTime, Duration, Utc};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

const SAMPLE_RATE: u32 = 8000;
/// Rows looked at per purge round.
const PURGE_BATCH: i64 = 500;

#[derive(Debug, Error)]
pub enum RecordingError {
    #[error("recording file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("recording file {path}: {source}")]
    Wav { path: PathBuf, source: hound::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the recording task failed: {0}")]
    Task(String),
}

/// The recordings directory and the store rows that index it. Cheap to
/// clone.
#[derive(Clone)]
pub struct Recordings {
    dir: Arc<PathBuf>,
    retention_days: u32,
    bridged_calls: bool,
    ivr_calls: bool,
    ivr_notice: String,
    store: Store,
}

impl Recordings {
    pub fn new(config: &RecordingsConfig, store: Store) -> Recordings {
        Recordings {
            dir: Arc::new(config.dir.clone()),
            retention_days: config.retention_days,
            bridged_calls: config.bridged_calls,
            ivr_calls: config.ivr_calls,
            ivr_notice: config.ivr_notice.clone(),
            store,
        }
    }

    /// Writes `samples` (8 kHz mono) for call `sip_call_id`, then its row
    /// (on ticket `ticket` when given). A file whose row cannot be written
    /// is removed again.
    pub async fn save(
        &self,
        sip_call_id: &str,
        ticket: Option<String>,
        samples: Vec<i16>,
    ) -> Result<StoredRecording, RecordingError> {
        let token = new_token();
        let path = self.path_of(&token).unwrap_or_default();
        let duration_ms = samples.len() as u64 * 1000 / u64::from(SAMPLE_RATE);
        let written = path.clone();
        let dir = self.dir.clone();
        let bytes = tokio::task::spawn_blocking(move || write_wav(&dir, &written, &samples))
            .await
            .map_err(|e| RecordingError::Task(e.to_string()))
            .and_then(|written| written)
            .inspect_err(|_| crate::metrics::recording(false))?;
        let new = NewRecording {
            token,
            kind: RecordingKind::Description,
            ticket,
            sip_call_id: sip_call_id.to_string(),
            channels: 1,
            duration_ms,
            bytes,
        };
        self.keep(new, &path).await
    }

    /// Stores the row of a written file; a file whose row cannot be
    /// written is removed again.
    async fn keep(
        &self,
        new: NewRecording,
        path: &Path,
    ) -> Result<StoredRecording, RecordingError> {
        match self.store.insert_recording(new).await {
            Ok(stored) => {
                crate::metrics::recording(true);
                Ok(stored)
            }
            Err(e) => {
                crate::metrics::recording(false);
                let _ = tokio::fs::remove_file(path).await;
                Err(e.into())
            }
        }
    }

    /// Starts recording call `sip_call_id` (stereo: the caller left, the
    /// agent or the IVR right), to be kept on ticket `ticket` if given.
    pub fn start_call(&self, sip_call_id: &str, ticket: Option<String>) -> CallRecording {
        let token = new_token();
        let path = self.path_of(&token).unwrap_or_default();
        let (chunks, mut incoming) = tokio::sync::mpsc::unbounded_channel::<StereoChunk>();
        let (dir, file) = (self.dir.clone(), path.clone());
        let writer = tokio::spawn(async move {
            let blocking = |e: tokio::task::JoinError| RecordingError::Task(e.to_string());
            let (d, f) = (dir.clone(), file.clone());
            let mut wav = tokio::task::spawn_blocking(move || create_wav(&d, &f, 2))
                .await
                .map_err(blocking)??;
            let mut frames = 0u64;
            while let Some(chunk) = incoming.recv().await {
                frames += chunk.left.len() as u64;
                let f = file.clone();
                wav = tokio::task::spawn_blocking(move || {
                    let pairs = chunk.left.into_iter().zip(chunk.right);
                    write_samples(&mut wav, &f, pairs.flat_map(|(l, r)| [l, r])).map(|()| wav)
                })
                .await
                .map_err(blocking)??;
            }
            let bytes = tokio::task::spawn_blocking(move || finish_wav(&dir, &file, wav))
                .await
                .map_err(blocking)??;
            Ok((bytes, frames))
        });
        CallRecording {
            chunks,
            writer,
            token,
            path,
            sip_call_id: sip_call_id.to_string(),
            ticket,
            recordings: self.clone(),
        }
    }

    /// Whether bridged calls are recorded (`recordings.bridged_calls`).
    pub fn records_bridged_calls(&self) -> bool {
        self.bridged_calls
    }

    /// Whether IVR legs are recorded (`recordings.ivr_calls`).
    pub fn records_ivr_calls(&self) -> bool {
        self.ivr_calls
    }

    /// The consent notice played before a recorded IVR leg's first node.
    pub fn ivr_notice(&self) -> Option<&str> {
        Some(self.ivr_notice.as_str()).filter(|n| self.ivr_calls && !n.is_empty())
    }

    /// Creates the directory and checks a file can be made there (at
    /// start-up: a gateway that cannot keep recordings still takes calls,
    /// and says so once, here, rather than at the first caller).
    pub fn prepare(&self) -> Result<(), RecordingError> {
        let probe = self.dir.join(format!(".probe-{}", new_token()));
        let io = |source| RecordingError::Io {
            path: probe.clone(),
            source,
        };
        std::fs::create_dir_all(self.dir.as_ref()).map_err(io)?;
        std::fs::write(&probe, b"").map_err(io)?;
        std::fs::remove_file(&probe).map_err(io)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The file of the recording with `token`; `None` for anything that is
    /// not a token of ours (so no path can be smuggled in).
    pub fn path_of(&self, token: &str) -> Option<PathBuf> {
        is_token(token).then(|| self.dir.join(format!("{token}.wav")))
    }

    /// Deletes the audio of recordings older than the retention, marking
    /// their rows purged; returns how many. Nothing when retention is 0.
    pub async fn purge(&self, now: DateTime<Utc>) -> Result<usize, RecordingError> {
        if self.retention_days == 0 {
            return Ok(0);
        }
        let before = now - Duration::days(i64::from(self.retention_days));
        let mut purged = 0;
        loop {
            let due = self.store.recordings_to_purge(before, PURGE_BATCH).await?;
            if due.is_empty() {
                return Ok(purged);
            }
            for recording in due {
                if let Some(path) = self.path_of(&recording.token) {
                    match tokio::fs::remove_file(&path).await {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(source) => return Err(RecordingError::Io { path, source }),
                    }
                }
                self.store.mark_recording_purged(recording.id).await?;
                crate::metrics::recordings_purged(1);
                purged += 1;
            }
        }
    }
}

/// Applies the retention every `period` until `stop` turns true. Safe in
/// every gateway sharing the store and the directory: a file already gone
/// is fine, and marking a row purged twice changes nothing.
pub async fn purge_every(
    recordings: Recordings,
    period: std::time::Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    crate::periodic::every(period, stop, || async {
        match recordings.purge(recordings.store.now()).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "recordings past their retention deleted"),
            Err(e) => tracing::error!(error = %e, "recording retention failed"),
        }
    })
    .await;
}

/// 32 lowercase hex digits from the OS's random source.
fn new_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_token(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

type WavWriter = hound::WavWriter<std::io::BufWriter<std::fs::File>>;

/// A new WAV file (never an existing one) at `path`, 8 kHz 16-bit.
fn create_wav(dir: &Path, path: &Path, channels: u16) -> Result<WavWriter, RecordingError> {
    let io = |source| RecordingError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let spec = hound::WavSpec {
        channels,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io)?;
    hound::WavWriter::new(std::io::BufWriter::new(file), spec).map_err(|source| {
        RecordingError::Wav {
            path: path.to_path_buf(),
            source,
        }
    })
}

fn write_samples(
    writer: &mut WavWriter,
    path: &Path,
    samples: impl Iterator<Item = i16>,
) -> Result<(), RecordingError> {
    for sample in samples {
        writer
            .write_sample(sample)
            .map_err(|source| RecordingError::Wav {
                path: path.to_path_buf(),
                source,
            })?;
    }
    Ok(())
}

/// Completes the WAV and syncs it (and the directory entry) to disk;
/// returns its size.
fn finish_wav(dir: &Path, path: &Path, writer: WavWriter) -> Result<u64, RecordingError> {
    let io = |source| RecordingError::Io {
        path: path.to_path_buf(),
        source,
    };
    writer.finalize().map_err(|source| RecordingError::Wav {
        path: path.to_path_buf(),
        source,
    })?;
    let file = std::fs::File::open(path).map_err(io)?;
    file.sync_all().map_err(io)?;
    if let Ok(directory) = std::fs::File::open(dir) {
        let _ = directory.sync_all();
    }
    Ok(file.metadata().map_err(io)?.len())
}

/// Writes a mono WAV at once; returns its size.
fn write_wav(dir: &Path, path: &Path, samples: &[i16]) -> Result<u64, RecordingError> {
    let mut writer = create_wav(dir, path, 1)?;
    write_samples(&mut writer, path, samples.iter().copied())?;
    finish_wav(dir, path, writer)
}

/// A call being recorded (an IVR leg, a bridged call): its audio goes to the file a second at
/// a time (in order, on the blocking pool), and the row is stored when
/// the call's media ends.
pub struct CallRecording {
    chunks: tokio::sync::mpsc::UnboundedSender<StereoChunk>,
    writer: tokio::task::JoinHandle<Result<(u64, u64), RecordingError>>,
    token: String,
    path: PathBuf,
    sip_call_id: String,
    ticket: Option<String>,
    recordings: Recordings,
}

impl CallRecording {
    /// Puts the recording on `ticket` (a recorded IVR leg that made its
    /// ticket after the recording began); `None` changes nothing.
    pub fn set_ticket(&mut self, ticket: Option<String>) {
        if ticket.is_some() {
            self.ticket = ticket;
        }
    }

    /// Adds the next stretch of both sides.
    pub fn append(&self, chunk: StereoChunk) {
        // A writer that failed has stopped taking chunks: `finish` says why.
        let _ = self.chunks.send(chunk);
    }

    /// Completes the file and stores its row (on the ticket, if any).
    pub async fn finish(self) -> Result<StoredRecording, RecordingError> {
        drop(self.chunks);
        let written = self
            .writer
            .await
            .map_err(|e| RecordingError::Task(e.to_string()))
            .and_then(|written| written);
        let (bytes, frames) = match written {
            Ok(written) => written,
            Err(e) => {
                crate::metrics::recording(false);
                let _ = tokio::fs::remove_file(&self.path).await;
                return Err(e);
            }
        };
        let new = NewRecording {
            token: self.token,
            kind: RecordingKind::Call,
            ticket: self.ticket,
            sip_call_id: self.sip_call_id,
            channels: 2,
            duration_ms: frames * 1000 / u64::from(SAMPLE_RATE),
            bytes,
        };
        self.recordings.keep(new, &self.path).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_hex_digits_and_differ() {
        let (a, b) = (new_token(), new_token());
        assert!(is_token(&a) && is_token(&b));
        assert_ne!(a, b);
    }

    #[test]
    fn only_our_tokens_name_a_file() {
        for bad in [
            "",
            "../../etc/passwd",
            "0123456789abcdef0123456789abcdeg",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcdef0",
        ] {
            assert!(!is_token(bad), "{bad:?}");
        }
        assert!(is_token("0123456789abcdef0123456789abcdef"));
    }

    #[test]
    fn a_written_wav_reads_back_sample_for_sample() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub").join("x.wav");
        let samples: Vec<i16> = (0..8000)
            .map(|i| ((i % 200) * 100 - 10_000) as i16)
            .collect();
        let bytes = write_wav(&dir.path().join("sub"), &path, &samples).expect("written");
        assert_eq!(bytes, 44 + 16_000);
        let mut reader = hound::WavReader::open(&path).expect("a WAV");
        assert_eq!(reader.spec().sample_rate, 8000);
        assert_eq!(reader.spec().channels, 1);
        let back: Vec<i16> = reader
            .samples::<i16>()
            .map(|s| s.expect("sample"))
            .collect();
        assert_eq!(back, samples);
        assert!(
            write_wav(&dir.path().join("sub"), &path, &samples).is_err(),
            "an existing file is never overwritten"
        );
    }
}
