//! Voice prompts: WAV files decoded, converted to 8 kHz mono and encoded in
//! both G.711 laws once at load, then shared by every call through `Arc`s.
//!
//! This module owns:
//! - decoding a WAV file ([`Prompt::load`]) with `hound`: 8 kHz mono 16-bit
//!   PCM is used as is, bit for bit; other integer widths (8, 24, 32 bit),
//!   32-bit float, any channel count (downmixed by averaging) and other
//!   sample rates are converted, the rate with `rubato`'s FFT resampler,
//!   which low-pass filters below the 4 kHz Nyquist limit before decimating
//!   so that high frequencies are removed rather than folded into the voice
//!   band;
//! - refusing, with the file and the reason, everything else: files that
//!   are not WAV, compressed WAV (µ-law, A-law, ADPCM, GSM, MP3, …), empty
//!   or truncated files and files longer than [`MAX_PROMPT_DURATION`];
//! - loading a whole directory ([`PromptLibrary::load_dir`]), reporting
//!   every bad file rather than the first.
//!
//! It reads files but keeps no handles, starts no tasks and never logs;
//! callers decide what to do with the errors.

use crate::media::g711;
use crate::sip::sdp::Codec;
use rubato::{FftFixedInOut, Resampler};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The sample rate of every prompt after loading (G.711's clock rate).
pub const SAMPLE_RATE: u32 = 8000;

/// The longest prompt accepted; longer files are refused.
pub const MAX_PROMPT_DURATION: Duration = Duration::from_secs(600);

/// Lowest and highest input sample rates accepted for conversion.
const MIN_INPUT_RATE: u32 = 4000;
const MAX_INPUT_RATE: u32 = 192_000;

/// Input frames asked of the resampler per chunk. Longer chunks mean a
/// longer (sharper) anti-aliasing filter; 4096 frames at 48 kHz gives a
/// filter whose stop band starts just above 4 kHz.
const RESAMPLER_CHUNK: usize = 4096;

/// Extension of the files [`PromptLibrary::load_dir`] loads (any case).
const WAV_EXTENSION: &str = "wav";

/// How deep [`PromptLibrary::load_dir`] descends below its directory.
const MAX_DIR_DEPTH: usize = 8;

/// One prompt, decoded and encoded once at load, shared by all calls.
pub struct Prompt {
    /// The prompt's name, e.g. `"zh/welcome"`.
    pub name: String,
    /// The audio as 8 kHz mono linear PCM.
    pub samples: Arc<[i16]>,
    /// The audio in G.711 µ-law, one byte per sample.
    pub pcmu: Arc<[u8]>,
    /// The audio in G.711 A-law, one byte per sample.
    pub pcma: Arc<[u8]>,
}

impl fmt::Debug for Prompt {
    /// Names the prompt and its length instead of dumping every sample.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prompt")
            .field("name", &self.name)
            .field("samples", &self.samples.len())
            .field("duration", &self.duration())
            .finish()
    }
}

impl Prompt {
    /// Builds a prompt from 8 kHz mono samples, encoding both laws.
    pub fn from_samples(name: impl Into<String>, samples: Vec<i16>) -> Prompt {
        let mut pcmu = Vec::with_capacity(samples.len());
        let mut pcma = Vec::with_capacity(samples.len());
        g711::encode(Codec::Pcmu, &samples, &mut pcmu);
        g711::encode(Codec::Pcma, &samples, &mut pcma);
        Prompt {
            name: name.into(),
            samples: samples.into(),
            pcmu: pcmu.into(),
            pcma: pcma.into(),
        }
    }

    /// Loads a WAV file as the prompt `name`, converting it to 8 kHz mono.
    pub fn load(name: &str, path: &Path) -> Result<Prompt, PromptError> {
        let samples = decode_wav(path)?;
        Ok(Prompt::from_samples(name, samples))
    }

    /// The encoded audio in `codec`'s law.
    pub fn encoded(&self, codec: Codec) -> &Arc<[u8]> {
        match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
        }
    }

    /// How long the prompt plays.
    pub fn duration(&self) -> Duration {
        samples_to_duration(self.samples.len())
    }
}

/// The play time of `samples` samples at 8 kHz.
pub(crate) fn samples_to_duration(samples: usize) -> Duration {
    // 125 µs per sample at 8 kHz.
    Duration::from_nanos(
        u64::try_from(samples)
            .unwrap_or(u64::MAX)
            .saturating_mul(125_000),
    )
}

/// Why a prompt file was refused. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The file or directory could not be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is not a well-formed WAV (RIFF/WAVE) file.
    #[error("{}: not a valid WAV file: {reason}", path.display())]
    NotWav { path: PathBuf, reason: String },
    /// The WAV file holds compressed audio rather than PCM.
    #[error(
        "{}: compressed WAV ({format}) is not supported; convert it to 16-bit PCM",
        path.display()
    )]
    Compressed { path: PathBuf, format: String },
    /// The WAV file is PCM but in a shape we do not convert.
    #[error("{}: unsupported WAV format: {reason}", path.display())]
    Unsupported { path: PathBuf, reason: String },
    /// The WAV file holds no audio.
    #[error("{}: contains no audio", path.display())]
    Empty { path: PathBuf },
    /// The prompt plays for longer than [`MAX_PROMPT_DURATION`].
    #[error(
        "{}: plays for {seconds:.1} s, longer than the {limit} s limit",
        path.display(),
        limit = MAX_PROMPT_DURATION.as_secs()
    )]
    TooLong { path: PathBuf, seconds: f64 },
    /// The sample data ends early or cannot be decoded.
    #[error("{}: corrupt sample data: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// The resampler refused the file's sample rate or data.
    #[error("{}: cannot resample: {reason}", path.display())]
    Resample { path: PathBuf, reason: String },
    /// The file's path does not make a prompt name (not UTF-8).
    #[error("{}: file name is not valid UTF-8", path.display())]
    BadName { path: PathBuf },
    /// Two files map to the same prompt name (e.g. `a.wav` and `a.WAV`).
    #[error(
        "{}: prompt name {name:?} is already taken by {}",
        path.display(),
        first.display()
    )]
    Duplicate {
        path: PathBuf,
        name: String,
        first: PathBuf,
    },
}

impl PromptError {
    /// The file (or directory) the error is about.
    pub fn path(&self) -> &Path {
        match self {
            PromptError::Io { path, .. }
            | PromptError::NotWav { path, .. }
            | PromptError::Compressed { path, .. }
            | PromptError::Unsupported { path, .. }
            | PromptError::Empty { path }
            | PromptError::TooLong { path, .. }
            | PromptError::Corrupt { path, .. }
            | PromptError::Resample { path, .. }
            | PromptError::BadName { path }
            | PromptError::Duplicate { path, .. } => path,
        }
    }
}

/// Reads a WAV file into 8 kHz mono samples.
fn decode_wav(path: &Path) -> Result<Vec<i16>, PromptError> {
    let io_error = |source| PromptError::Io {
        path: path.to_owned(),
        source,
    };
    // The format tag is checked before hound sees the file: hound validates
    // PCM-only fields first and would call an ADPCM file "ill-formed".
    let header = read_header(path).map_err(io_error)?;
    if header.is_empty() {
        return Err(PromptError::Empty {
            path: path.to_owned(),
        });
    }
    if let Some(tag) = format_tag(&header) {
        if tag != FORMAT_PCM && tag != FORMAT_IEEE_FLOAT {
            return Err(PromptError::Compressed {
                path: path.to_owned(),
                format: describe_format_tag(Some(tag)),
            });
        }
    }

    let file = File::open(path).map_err(io_error)?;
    let reader = hound::WavReader::new(BufReader::new(file)).map_err(|error| match error {
        // hound reports a short read as `Other` ("Failed to read enough bytes").
        hound::Error::IoError(source)
            if matches!(
                source.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::Other
            ) =>
        {
            PromptError::NotWav {
                path: path.to_owned(),
                reason: format!("header is truncated ({source})"),
            }
        }
        hound::Error::IoError(source) => io_error(source),
        hound::Error::Unsupported => PromptError::Compressed {
            path: path.to_owned(),
            format: describe_format_tag(format_tag(&header)),
        },
        other => PromptError::NotWav {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    })?;

    let spec = reader.spec();
    let frames = reader.duration();
    if frames == 0 {
        return Err(PromptError::Empty {
            path: path.to_owned(),
        });
    }
    if !(MIN_INPUT_RATE..=MAX_INPUT_RATE).contains(&spec.sample_rate) {
        return Err(PromptError::Unsupported {
            path: path.to_owned(),
            reason: format!(
                "sample rate {} Hz is outside {MIN_INPUT_RATE}..={MAX_INPUT_RATE} Hz",
                spec.sample_rate
            ),
        });
    }
    let seconds = f64::from(frames) / f64::from(spec.sample_rate);
    if u64::from(frames) > MAX_PROMPT_DURATION.as_secs() * u64::from(spec.sample_rate) {
        return Err(PromptError::TooLong {
            path: path.to_owned(),
            seconds,
        });
    }

    let channels = usize::from(spec.channels);
    let frames = usize::try_from(frames).unwrap_or(usize::MAX);
    let corrupt = |error: hound::Error| PromptError::Corrupt {
        path: path.to_owned(),
        reason: match error {
            hound::Error::IoError(source) => {
                format!("data ends early or cannot be read ({source})")
            }
            other => other.to_string(),
        },
    };

    // The common case: already telephone audio, used bit for bit.
    if spec.sample_rate == SAMPLE_RATE
        && channels == 1
        && spec.sample_format == hound::SampleFormat::Int
        && spec.bits_per_sample == 16
    {
        let mut samples = Vec::with_capacity(frames);
        for sample in reader.into_samples::<i16>() {
            samples.push(sample.map_err(corrupt)?);
        }
        return Ok(samples);
    }

    let mut sink =
        MonoSink::new(spec.sample_rate, frames).map_err(|reason| PromptError::Resample {
            path: path.to_owned(),
            reason,
        })?;
    let resample_error = |reason| PromptError::Resample {
        path: path.to_owned(),
        reason,
    };
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            let scale = 1.0 / f64::from(1u32 << (bits - 1)) as f32;
            downmix(reader.into_samples::<i32>(), channels, &mut sink, |s| {
                s as f32 * scale
            })
            .map_err(|error| match error {
                DownmixError::Read(error) => corrupt(error),
                DownmixError::Resample(reason) => resample_error(reason),
            })?;
        }
        (hound::SampleFormat::Float, 32) => {
            // Out-of-range floats are clipped and NaN taken as silence, so
            // one bad sample cannot poison a whole resampler chunk.
            downmix(reader.into_samples::<f32>(), channels, &mut sink, |s| {
                if s.is_nan() {
                    0.0
                } else {
                    s.clamp(-1.0, 1.0)
                }
            })
            .map_err(|error| match error {
                DownmixError::Read(error) => corrupt(error),
                DownmixError::Resample(reason) => resample_error(reason),
            })?;
        }
        (format, bits) => {
            return Err(PromptError::Unsupported {
                path: path.to_owned(),
                reason: format!("{bits}-bit {format:?} samples"),
            })
        }
    }
    sink.finish().map_err(resample_error)
}

enum DownmixError {
    Read(hound::Error),
    Resample(String),
}

/// Averages each frame's channels and feeds the result to `sink`.
fn downmix<S>(
    samples: impl Iterator<Item = hound::Result<S>>,
    channels: usize,
    sink: &mut MonoSink,
    to_f32: impl Fn(S) -> f32,
) -> Result<(), DownmixError> {
    let divisor = channels.max(1) as f32;
    let mut sum = 0.0f32;
    let mut in_frame = 0;
    for sample in samples {
        sum += to_f32(sample.map_err(DownmixError::Read)?);
        in_frame += 1;
        if in_frame == channels {
            sink.push(sum / divisor).map_err(DownmixError::Resample)?;
            sum = 0.0;
            in_frame = 0;
        }
    }
    Ok(())
}

/// Collects mono samples in [-1, 1) and turns them into 8 kHz `i16`,
/// resampling on the way when the input rate is not 8 kHz.
struct MonoSink {
    out: Vec<i16>,
    /// Output samples expected for the input's length at 8 kHz.
    expected: usize,
    resampler: Option<Resampling>,
}

struct Resampling {
    resampler: FftFixedInOut<f32>,
    /// Input collected for the next chunk.
    input: Vec<f32>,
    /// The resampler's output for one chunk (one channel).
    output: Vec<Vec<f32>>,
    /// Output samples still to drop for the filter's delay.
    delay: usize,
}

impl MonoSink {
    fn new(rate: u32, frames: usize) -> Result<MonoSink, String> {
        let expected = u64::try_from(frames)
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::from(SAMPLE_RATE))
            .saturating_add(u64::from(rate / 2))
            / u64::from(rate.max(1));
        let expected = usize::try_from(expected).unwrap_or(usize::MAX);
        let resampler = if rate == SAMPLE_RATE {
            None
        } else {
            let rate = usize::try_from(rate).map_err(|e| e.to_string())?;
            let resampler =
                FftFixedInOut::<f32>::new(rate, SAMPLE_RATE as usize, RESAMPLER_CHUNK, 1)
                    .map_err(|e| e.to_string())?;
            Some(Resampling {
                input: Vec::with_capacity(resampler.input_frames_max()),
                output: resampler.output_buffer_allocate(true),
                delay: resampler.output_delay(),
                resampler,
            })
        };
        Ok(MonoSink {
            out: Vec::with_capacity(expected),
            expected,
            resampler,
        })
    }

    fn push(&mut self, sample: f32) -> Result<(), String> {
        match &mut self.resampler {
            None => {
                self.out.push(quantize(sample));
                Ok(())
            }
            Some(resampling) => {
                resampling.input.push(sample);
                if resampling.input.len() >= resampling.resampler.input_frames_next() {
                    resampling.run(&mut self.out)?;
                }
                Ok(())
            }
        }
    }

    /// Flushes the resampler's tail and trims the output to the length the
    /// input's duration calls for.
    fn finish(mut self) -> Result<Vec<i16>, String> {
        if let Some(resampling) = &mut self.resampler {
            // Zero-padded chunks push the last input through the filter.
            while self.out.len() < self.expected {
                let chunk = resampling.resampler.input_frames_next();
                resampling.input.resize(chunk, 0.0);
                let before = self.out.len();
                resampling.run(&mut self.out)?;
                if self.out.len() == before && resampling.delay == 0 {
                    return Err("resampler produced no output".to_owned());
                }
            }
        }
        self.out.truncate(self.expected);
        Ok(self.out)
    }
}

impl Resampling {
    /// Resamples the collected chunk and appends it, minus the filter delay.
    fn run(&mut self, out: &mut Vec<i16>) -> Result<(), String> {
        let (_, produced) = self
            .resampler
            .process_into_buffer(&[self.input.as_slice()], &mut self.output, None)
            .map_err(|e| e.to_string())?;
        self.input.clear();
        let produced = self
            .output
            .first()
            .map_or(&[][..], |channel| &channel[..produced.min(channel.len())]);
        let skip = self.delay.min(produced.len());
        self.delay -= skip;
        out.extend(produced[skip..].iter().map(|&sample| quantize(sample)));
        Ok(())
    }
}

/// Converts a sample in [-1, 1) to 16-bit PCM, clipping overshoot.
fn quantize(sample: f32) -> i16 {
    (sample * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// WAV format tags of the uncompressed encodings we decode.
const FORMAT_PCM: u16 = 0x0001;
const FORMAT_IEEE_FLOAT: u16 = 0x0003;
/// WAVE_FORMAT_EXTENSIBLE: the real tag opens the SubFormat GUID.
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// How much of a file [`read_header`] reads to find the `fmt ` chunk.
const HEADER_PROBE: u64 = 64 * 1024;

/// The start of a file, enough to find its `fmt ` chunk.
fn read_header(path: &Path) -> io::Result<Vec<u8>> {
    let mut header = Vec::new();
    File::open(path)?
        .take(HEADER_PROBE)
        .read_to_end(&mut header)?;
    Ok(header)
}

/// The format tag of a RIFF/WAVE header's `fmt ` chunk (the SubFormat's for
/// WAVE_FORMAT_EXTENSIBLE); `None` when the header is not one or is cut
/// short, which hound then reports in detail.
fn format_tag(header: &[u8]) -> Option<u16> {
    if header.get(0..4)? != b"RIFF" || header.get(8..12)? != b"WAVE" {
        return None;
    }
    let le_u16 = |at: usize| -> Option<u16> {
        Some(u16::from_le_bytes(
            header.get(at..at.checked_add(2)?)?.try_into().ok()?,
        ))
    };
    let mut at: usize = 12;
    while let Some(id) = header.get(at..at.checked_add(4)?) {
        let size = u32::from_le_bytes(header.get(at + 4..at + 8)?.try_into().ok()?);
        let body = at + 8;
        if id == b"fmt " {
            let tag = le_u16(body)?;
            return if tag == FORMAT_EXTENSIBLE {
                le_u16(body + 24)
            } else {
                Some(tag)
            };
        }
        // Chunks are padded to an even length.
        let size = usize::try_from(size).ok()?;
        at = body.checked_add(size)?.checked_add(size % 2)?;
    }
    None
}

/// Names a WAV format tag for an error message.
fn describe_format_tag(tag: Option<u16>) -> String {
    let Some(tag) = tag else {
        return "unknown encoding".to_owned();
    };
    let name = match tag {
        0x0002 => "Microsoft ADPCM",
        0x0006 => "A-law",
        0x0007 => "µ-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0040 => "G.721 ADPCM",
        0x0050 => "MPEG",
        0x0055 => "MP3",
        _ => "",
    };
    if name.is_empty() {
        format!("format tag {tag:#06x}")
    } else {
        format!("{name}, format tag {tag:#06x}")
    }
}

/// All prompts under a directory, keyed by their path relative to it without
/// extension, with `/` separators: `prompts/zh/welcome.wav` → `"zh/welcome"`.
#[derive(Debug, Default)]
pub struct PromptLibrary {
    prompts: BTreeMap<String, Arc<Prompt>>,
}

impl PromptLibrary {
    /// Loads every `.wav` file (any case) under `dir`, recursively. Other
    /// files are ignored. Fails with every bad file, not just the first.
    pub fn load_dir(dir: &Path) -> Result<PromptLibrary, Vec<PromptError>> {
        let mut files = Vec::new();
        let mut errors = Vec::new();
        collect_wav_files(dir, dir, 0, &mut files, &mut errors);

        let mut prompts = BTreeMap::new();
        let mut sources: BTreeMap<String, PathBuf> = BTreeMap::new();
        for (name, path) in files {
            if let Some(first) = sources.get(&name) {
                errors.push(PromptError::Duplicate {
                    path,
                    name,
                    first: first.clone(),
                });
                continue;
            }
            match Prompt::load(&name, &path) {
                Ok(prompt) => {
                    prompts.insert(name.clone(), Arc::new(prompt));
                }
                Err(error) => errors.push(error),
            }
            sources.insert(name, path);
        }
        if errors.is_empty() {
            Ok(PromptLibrary { prompts })
        } else {
            Err(errors)
        }
    }

    /// Builds a library from prompts already loaded (keyed by their names).
    pub fn from_prompts(prompts: impl IntoIterator<Item = Prompt>) -> PromptLibrary {
        PromptLibrary {
            prompts: prompts
                .into_iter()
                .map(|prompt| (prompt.name.clone(), Arc::new(prompt)))
                .collect(),
        }
    }

    /// The prompt called `name`, e.g. `"zh/welcome"`.
    pub fn get(&self, name: &str) -> Option<&Arc<Prompt>> {
        self.prompts.get(name)
    }

    /// Every prompt name, in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.prompts.keys().map(String::as_str)
    }

    /// How many prompts the library holds.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// Whether the library holds no prompts.
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}

/// Walks `dir` in sorted order, collecting `(name, path)` for every WAV
/// file and an error for every unreadable directory or non-UTF-8 name.
fn collect_wav_files(
    root: &Path,
    dir: &Path,
    depth: usize,
    files: &mut Vec<(String, PathBuf)>,
    errors: &mut Vec<PromptError>,
) {
    let io_error = |source| PromptError::Io {
        path: dir.to_owned(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(source) => return errors.push(io_error(source)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => paths.push(entry.path()),
            Err(source) => errors.push(io_error(source)),
        }
    }
    paths.sort();
    for path in paths {
        // Follows symbolic links, so a linked prompt set loads like a copy.
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(source) => {
                errors.push(PromptError::Io { path, source });
                continue;
            }
        };
        if metadata.is_dir() {
            if depth < MAX_DIR_DEPTH {
                collect_wav_files(root, &path, depth + 1, files, errors);
            }
            continue;
        }
        let is_wav = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case(WAV_EXTENSION));
        if !metadata.is_file() || !is_wav {
            continue;
        }
        match prompt_name(root, &path) {
            Some(name) => files.push((name, path)),
            None => errors.push(PromptError::BadName { path }),
        }
    }
}

/// `root/zh/welcome.wav` → `"zh/welcome"`; `None` for non-UTF-8 names.
fn prompt_name(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?.with_extension("");
    let mut parts = Vec::new();
    for component in relative.components() {
        match component {
            std::path::Component::Normal(part) => parts.push(part.to_str()?),
            _ => return None,
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn spec(rate: u32, channels: u16, bits: u16, format: hound::SampleFormat) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: format,
        }
    }

    /// A sine of `freq` Hz at amplitude `amp` (of full scale), `secs` long.
    fn sine(rate: u32, freq: f64, amp: f64, secs: f64) -> Vec<f64> {
        let n = (f64::from(rate) * secs).round() as usize;
        (0..n)
            .map(|i| amp * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin())
            .collect()
    }

    fn write_i16(path: &Path, rate: u32, channels: u16, mono: &[f64]) {
        let mut writer =
            hound::WavWriter::create(path, spec(rate, channels, 16, hound::SampleFormat::Int))
                .unwrap();
        for &x in mono {
            for _ in 0..channels {
                writer.write_sample((x * 32767.0).round() as i16).unwrap();
            }
        }
        writer.finalize().unwrap();
    }

    /// Power of `freq` in `samples` (8 kHz), by the Goertzel algorithm,
    /// normalised so that a full-scale sine gives about 0.25.
    fn goertzel(samples: &[i16], freq: f64) -> f64 {
        let w = 2.0 * PI * freq / f64::from(SAMPLE_RATE);
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in samples {
            let s0 = f64::from(x) / 32768.0 + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        power / (samples.len() as f64).powi(2)
    }

    /// Root mean square of the middle of the signal (skipping the edges),
    /// as a fraction of full scale.
    fn rms(samples: &[i16]) -> f64 {
        let mid = &samples[samples.len() / 10..samples.len() * 9 / 10];
        let sum: f64 = mid.iter().map(|&x| (f64::from(x) / 32768.0).powi(2)).sum();
        (sum / mid.len() as f64).sqrt()
    }

    /// Rising zero crossings per second over the middle of the signal.
    fn frequency_by_zero_crossings(samples: &[i16]) -> f64 {
        let mid = &samples[samples.len() / 10..samples.len() * 9 / 10];
        let crossings = mid.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
        crossings as f64 * f64::from(SAMPLE_RATE) / mid.len() as f64
    }

    fn assert_1khz(prompt: &Prompt, secs: f64) {
        let expected = secs * f64::from(SAMPLE_RATE);
        let len = prompt.samples.len() as f64;
        assert!(
            (len - expected).abs() <= expected * 0.01,
            "length {len}, expected {expected}"
        );
        let freq = frequency_by_zero_crossings(&prompt.samples);
        assert!((freq - 1000.0).abs() < 5.0, "frequency {freq}");
        let mid = &prompt.samples[800..prompt.samples.len() - 800];
        let at_1k = goertzel(mid, 1000.0);
        let at_2k = goertzel(mid, 2000.0);
        assert!(at_1k > 0.01, "1 kHz power {at_1k}");
        assert!(at_1k > at_2k * 1000.0, "1 kHz {at_1k} vs 2 kHz {at_2k}");
        // Amplitude 0.5 in, about 0.5 out (RMS 0.354).
        let level = rms(&prompt.samples);
        assert!((level - 0.354).abs() < 0.02, "rms {level}");
    }

    #[test]
    fn eight_khz_mono_passes_through_bit_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let samples: Vec<i16> = (0..8000)
            .map(|i: i32| ((i * 7919) % 65536 - 32768) as i16)
            .collect();
        let mut writer =
            hound::WavWriter::create(&path, spec(8000, 1, 16, hound::SampleFormat::Int)).unwrap();
        for &s in &samples {
            writer.write_sample(s).unwrap();
        }
        writer.finalize().unwrap();

        let prompt = Prompt::load("a", &path).unwrap();
        assert_eq!(prompt.name, "a");
        assert_eq!(&prompt.samples[..], &samples[..]);
        assert_eq!(prompt.duration(), Duration::from_secs(1));
        let mut pcmu = Vec::new();
        let mut pcma = Vec::new();
        g711::encode(Codec::Pcmu, &samples, &mut pcmu);
        g711::encode(Codec::Pcma, &samples, &mut pcma);
        assert_eq!(&prompt.encoded(Codec::Pcmu)[..], &pcmu[..]);
        assert_eq!(&prompt.encoded(Codec::Pcma)[..], &pcma[..]);
    }

    #[test]
    fn sixteen_khz_mono_is_resampled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        write_i16(&path, 16000, 1, &sine(16000, 1000.0, 0.5, 1.0));
        assert_1khz(&Prompt::load("a", &path).unwrap(), 1.0);
    }

    #[test]
    fn cd_rate_stereo_is_downmixed_and_resampled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        write_i16(&path, 44100, 2, &sine(44100, 1000.0, 0.5, 1.3));
        assert_1khz(&Prompt::load("a", &path).unwrap(), 1.3);
    }

    #[test]
    fn stereo_is_averaged() {
        // Left full of the tone, right silent: the mix is half the tone.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let tone = sine(8000, 1000.0, 1.0, 1.0);
        let mut writer =
            hound::WavWriter::create(&path, spec(8000, 2, 16, hound::SampleFormat::Int)).unwrap();
        for &x in &tone {
            writer.write_sample((x * 32767.0).round() as i16).unwrap();
            writer.write_sample(0i16).unwrap();
        }
        writer.finalize().unwrap();
        let prompt = Prompt::load("a", &path).unwrap();
        assert_eq!(prompt.samples.len(), tone.len());
        for (&got, &x) in prompt.samples.iter().zip(&tone) {
            let want = (x * 32767.0).round() / 2.0;
            assert!((f64::from(got) - want).abs() <= 1.0, "{got} vs {want}");
        }
    }

    #[test]
    fn float_48k_stereo_is_resampled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let mut writer =
            hound::WavWriter::create(&path, spec(48000, 2, 32, hound::SampleFormat::Float))
                .unwrap();
        for x in sine(48000, 1000.0, 0.5, 0.75) {
            writer.write_sample(x as f32).unwrap();
            writer.write_sample(x as f32).unwrap();
        }
        writer.finalize().unwrap();
        assert_1khz(&Prompt::load("a", &path).unwrap(), 0.75);
    }

    #[test]
    fn other_integer_widths_are_converted() {
        let dir = tempfile::tempdir().unwrap();
        let tone = sine(22050, 1000.0, 0.5, 1.0);
        for bits in [8u16, 24, 32] {
            let path = dir.path().join(format!("a{bits}.wav"));
            let mut writer =
                hound::WavWriter::create(&path, spec(22050, 1, bits, hound::SampleFormat::Int))
                    .unwrap();
            let full = f64::from(1u32 << (bits - 1)) - 1.0;
            for &x in &tone {
                let value = (x * full).round();
                if bits == 8 {
                    writer.write_sample(value as i8).unwrap();
                } else {
                    writer.write_sample(value as i32).unwrap();
                }
            }
            writer.finalize().unwrap();
            assert_1khz(&Prompt::load("a", &path).unwrap(), 1.0);
        }
    }

    #[test]
    fn eight_khz_non_16_bit_is_converted_without_resampling() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let mut writer =
            hound::WavWriter::create(&path, spec(8000, 1, 24, hound::SampleFormat::Int)).unwrap();
        for s in [0i32, 256, -256, 8_388_607, -8_388_608, 1_000_000] {
            writer.write_sample(s).unwrap();
        }
        writer.finalize().unwrap();
        let prompt = Prompt::load("a", &path).unwrap();
        assert_eq!(&prompt.samples[..], &[0, 1, -1, 32767, -32768, 3906]);
    }

    #[test]
    fn tone_above_nyquist_is_filtered_not_aliased() {
        // 5 kHz would fold to 3 kHz at 8 kHz without an anti-aliasing filter.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        for rate in [48000, 44100] {
            write_i16(&path, rate, 1, &sine(rate, 1000.0, 0.5, 1.0));
            let reference = Prompt::load("ref", &path).unwrap();
            write_i16(&path, rate, 1, &sine(rate, 5000.0, 0.5, 1.0));
            let high = Prompt::load("high", &path).unwrap();
            assert_eq!(high.samples.len(), 8000);

            // Over the whole prompt, including the clicks of the tone's
            // abrupt start and end, which are broadband.
            let tone = goertzel(&reference.samples, 1000.0);
            let alias = goertzel(&high.samples, 3000.0);
            let alias_db = 10.0 * (tone / alias.max(1e-30)).log10();
            // The steady state: the loudest sample away from the edges.
            let peak = high.samples[800..7200]
                .iter()
                .map(|&x| i32::from(x).abs())
                .max()
                .unwrap_or(0);
            eprintln!(
                "5 kHz tone at {rate} Hz -> 8 kHz: 3 kHz alias {alias_db:.1} dB below \
                 the 1 kHz reference over the whole prompt; steady-state peak {peak} LSB \
                 (input peak 16384 LSB)"
            );
            assert!(
                alias_db >= 40.0,
                "alias only {alias_db:.1} dB down at {rate} Hz"
            );
            // 40 dB below the input's 16384 is 164.
            assert!(peak <= 164, "steady-state peak {peak} at {rate} Hz");
        }
    }

    #[test]
    fn telephone_band_passes_the_resampler() {
        // 3.4 kHz, the top of the telephone band, keeps its level.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        write_i16(&path, 48000, 1, &sine(48000, 3400.0, 0.5, 1.0));
        let prompt = Prompt::load("a", &path).unwrap();
        let level_db = 20.0 * (rms(&prompt.samples) / (0.5 / 2f64.sqrt())).log10();
        assert!(level_db.abs() < 1.0, "3.4 kHz level {level_db:.2} dB");
    }

    #[test]
    fn empty_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.wav");
        std::fs::write(&path, b"").unwrap();
        let error = Prompt::load("empty", &path).unwrap_err();
        assert!(matches!(error, PromptError::Empty { .. }), "{error}");
        assert!(error.to_string().contains("empty.wav"), "{error}");
    }

    #[test]
    fn wav_without_samples_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silent.wav");
        hound::WavWriter::create(&path, spec(8000, 1, 16, hound::SampleFormat::Int))
            .unwrap()
            .finalize()
            .unwrap();
        let error = Prompt::load("silent", &path).unwrap_err();
        assert!(matches!(error, PromptError::Empty { .. }), "{error}");
        assert_eq!(
            error.to_string(),
            format!("{}: contains no audio", path.display())
        );
    }

    #[test]
    fn text_file_named_wav_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.wav");
        std::fs::write(&path, "these are not the samples you are looking for\n").unwrap();
        let error = Prompt::load("notes", &path).unwrap_err();
        assert!(matches!(error, PromptError::NotWav { .. }), "{error}");
        let text = error.to_string();
        assert!(
            text.contains("notes.wav") && text.contains("RIFF"),
            "{text}"
        );
    }

    /// A minimal WAV with the given format tag and raw data bytes.
    fn raw_wav(format_tag: u16, bits: u16, data: &[u8]) -> Vec<u8> {
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&format_tag.to_le_bytes());
        fmt.extend_from_slice(&1u16.to_le_bytes()); // channels
        fmt.extend_from_slice(&8000u32.to_le_bytes()); // sample rate
        fmt.extend_from_slice(&(8000 * u32::from(bits) / 8).to_le_bytes()); // byte rate
        fmt.extend_from_slice(&(bits / 8).to_le_bytes()); // block align
        fmt.extend_from_slice(&bits.to_le_bytes());
        fmt.extend_from_slice(&0u16.to_le_bytes()); // cbSize
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(4 + 8 + fmt.len() as u32 + 8 + data.len() as u32).to_le_bytes());
        wav.extend_from_slice(b"WAVE");
        wav.extend_from_slice(b"fmt ");
        wav.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
        wav.extend_from_slice(&fmt);
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
        wav.extend_from_slice(data);
        wav
    }

    #[test]
    fn compressed_wav_is_refused_with_its_format() {
        let dir = tempfile::tempdir().unwrap();
        let mulaw = dir.path().join("mulaw.wav");
        std::fs::write(&mulaw, raw_wav(7, 8, &[0xFF; 800])).unwrap();
        let error = Prompt::load("mulaw", &mulaw).unwrap_err();
        assert!(matches!(error, PromptError::Compressed { .. }), "{error}");
        let text = error.to_string();
        assert!(
            text.contains("mulaw.wav") && text.contains("µ-law"),
            "{text}"
        );

        // ADPCM headers (4-bit samples, block sizes that are not whole
        // samples) are refused for their tag, not as ill-formed PCM.
        for (tag, name) in [(0x0002, "Microsoft ADPCM"), (0x0011, "IMA ADPCM")] {
            let adpcm = dir.path().join("adpcm.wav");
            std::fs::write(&adpcm, raw_wav(tag, 4, &[0; 256])).unwrap();
            let error = Prompt::load("adpcm", &adpcm).unwrap_err();
            assert!(matches!(error, PromptError::Compressed { .. }), "{error}");
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn truncated_data_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.wav");
        let mut wav = raw_wav(1, 16, &[0; 1600]);
        wav.truncate(wav.len() - 700);
        std::fs::write(&path, wav).unwrap();
        let error = Prompt::load("cut", &path).unwrap_err();
        assert!(matches!(error, PromptError::Corrupt { .. }), "{error}");
        assert!(error.to_string().contains("cut.wav"), "{error}");
    }

    #[test]
    fn overlong_file_is_refused_before_decoding() {
        // A header claiming 11 minutes at 8 kHz 8-bit (5.3 MB of data); the
        // data itself is absent, so only the header check can refuse it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.wav");
        let mut wav = raw_wav(1, 8, &[]);
        let claimed: u32 = 11 * 60 * 8000;
        let at = wav.len() - 4;
        wav[at..].copy_from_slice(&claimed.to_le_bytes());
        std::fs::write(&path, wav).unwrap();
        let error = Prompt::load("long", &path).unwrap_err();
        assert!(matches!(error, PromptError::TooLong { .. }), "{error}");
        assert!(error.to_string().contains("660.0 s"), "{error}");
    }

    #[test]
    fn missing_file_is_refused() {
        let error = Prompt::load("x", Path::new("/nonexistent/x.wav")).unwrap_err();
        assert!(matches!(error, PromptError::Io { .. }), "{error}");
        assert_eq!(error.path(), Path::new("/nonexistent/x.wav"));
    }

    #[test]
    fn load_dir_names_prompts_by_relative_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("zh/menu")).unwrap();
        std::fs::create_dir_all(dir.path().join("en")).unwrap();
        let tone = sine(8000, 1000.0, 0.5, 0.1);
        write_i16(&dir.path().join("zh/welcome.wav"), 8000, 1, &tone);
        write_i16(&dir.path().join("zh/menu/main.WAV"), 16000, 1, &tone);
        write_i16(&dir.path().join("en/welcome.wav"), 8000, 1, &tone);
        std::fs::write(dir.path().join("manifest.toml"), "not a prompt").unwrap();
        std::fs::write(dir.path().join("en/README.md"), "not a prompt").unwrap();

        let library = PromptLibrary::load_dir(dir.path()).unwrap();
        assert_eq!(library.len(), 3);
        assert!(!library.is_empty());
        assert_eq!(
            library.names().collect::<Vec<_>>(),
            ["en/welcome", "zh/menu/main", "zh/welcome"]
        );
        let welcome = library.get("zh/welcome").unwrap();
        assert_eq!(welcome.name, "zh/welcome");
        assert_eq!(welcome.samples.len(), 800);
        assert!(library.get("zh/goodbye").is_none());
    }

    #[test]
    fn load_dir_reports_every_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("zh")).unwrap();
        write_i16(
            &dir.path().join("good.wav"),
            8000,
            1,
            &sine(8000, 440.0, 0.5, 0.1),
        );
        std::fs::write(dir.path().join("empty.wav"), b"").unwrap();
        std::fs::write(dir.path().join("zh/text.wav"), "hello").unwrap();
        std::fs::write(dir.path().join("zh/ulaw.wav"), raw_wav(7, 8, &[0xFF; 80])).unwrap();
        write_i16(&dir.path().join("zh/dup.wav"), 8000, 1, &[0.0; 80]);
        write_i16(&dir.path().join("zh/dup.WAV"), 8000, 1, &[0.0; 80]);

        let errors = PromptLibrary::load_dir(dir.path()).unwrap_err();
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 4, "{messages:#?}");
        let mentions = |file: &str| messages.iter().any(|m| m.contains(file));
        for file in ["empty.wav", "zh/text.wav", "zh/ulaw.wav", "zh/dup.wav"] {
            assert!(mentions(file), "{file} missing from {messages:#?}");
        }
        assert!(errors
            .iter()
            .any(|e| matches!(e, PromptError::Duplicate { name, .. } if name == "zh/dup")));
        assert!(!mentions("good.wav"), "{messages:#?}");
    }

    #[test]
    fn load_dir_of_a_missing_directory_fails() {
        let errors = PromptLibrary::load_dir(Path::new("/nonexistent/prompts")).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path(), Path::new("/nonexistent/prompts"));
    }

    #[derive(serde::Deserialize)]
    struct Manifest {
        prompt: Vec<ManifestEntry>,
    }

    #[derive(serde::Deserialize)]
    struct ManifestEntry {
        name: String,
        voice: String,
        text: String,
    }

    #[test]
    fn shipped_prompts_match_the_manifest() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let manifest = std::fs::read_to_string(root.join("manifest.toml")).unwrap();
        let manifest: Manifest = toml::from_str(&manifest).unwrap();
        let library = PromptLibrary::load_dir(&root).unwrap_or_else(|errors| {
            panic!("shipped prompts refused: {errors:#?}");
        });
        assert!(manifest.prompt.len() >= 4);
        for entry in &manifest.prompt {
            assert!(!entry.voice.is_empty() && !entry.text.is_empty());
            let prompt = library
                .get(&entry.name)
                .unwrap_or_else(|| panic!("{} is in the manifest but not shipped", entry.name));
            // Speech, not an empty or cut file: the shortest shipped
            // prompts are single syllables of about 0.3 s.
            assert!(
                prompt.duration() > Duration::from_millis(250),
                "{}",
                entry.name
            );
            // Shipped prompts need no conversion: 8 kHz mono 16-bit as is.
            let path = root.join(format!("{}.wav", entry.name));
            let spec = hound::WavReader::open(&path).unwrap().spec();
            assert_eq!(
                spec,
                hound::WavSpec {
                    channels: 1,
                    sample_rate: 8000,
                    bits_per_sample: 16,
                    sample_format: hound::SampleFormat::Int,
                },
                "{}",
                path.display()
            );
        }
        // Every shipped prompt is in the manifest.
        for name in library.names() {
            assert!(
                manifest.prompt.iter().any(|entry| entry.name == name),
                "{name} is shipped but not in the manifest"
            );
        }
    }
}
