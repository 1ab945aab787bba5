//! Recording what the caller says (a dialplan's `record` node), sans-IO:
//! decoded 8 kHz samples go in as they arrive; the recording ends at the
//! first of: silence after speech, no speech at all for a while, the
//! maximum length. A key or the call's end stops it from outside
//! ([`Recorder::stop`]). Speech is told from silence by the mean absolute
//! amplitude of 20 ms frames, which is enough for a telephone line's
//! noise floor; trailing silence is cut to a short tail.

use std::time::Duration;

/// Samples per 20 ms frame at 8 kHz.
const FRAME: usize = 160;
/// Samples per second at 8 kHz.
const RATE: usize = 8000;
/// Silence kept after the last speech frame.
const TAIL: usize = RATE / 2;

/// How a recording is to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSpec {
    /// Longest recording.
    pub max: Duration,
    /// Ends after this much silence once the caller has spoken.
    pub silence: Duration,
    /// Ends (empty) when the caller has said nothing for this long.
    pub no_speech: Duration,
    /// A frame whose mean absolute amplitude (16-bit PCM) reaches this is
    /// speech.
    pub level: u16,
}

/// Why a recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordEnd {
    /// The caller spoke, then was silent.
    Silence,
    /// Nothing was said.
    NoSpeech,
    MaxLength,
    /// Stopped from outside: the finish key, the IVR's safety timer, the
    /// call's end.
    Stopped,
}

impl RecordEnd {
    pub fn code(self) -> &'static str {
        match self {
            RecordEnd::Silence => "silence",
            RecordEnd::NoSpeech => "no_speech",
            RecordEnd::MaxLength => "max_length",
            RecordEnd::Stopped => "stopped",
        }
    }
}

/// A finished recording: 8 kHz 16-bit mono samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub end: RecordEnd,
    pub samples: Vec<i16>,
    /// Whether any frame was speech.
    pub heard_speech: bool,
}

impl Recording {
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.samples.len() as u64 * 1000 / RATE as u64)
    }
}

pub struct Recorder {
    spec: RecordSpec,
    samples: Vec<i16>,
    /// Samples not yet judged (less than a frame).
    pending: usize,
    /// Where the last speech frame ended, if any.
    last_speech: Option<usize>,
    /// Silent samples since the last speech frame (or the start).
    silent_run: usize,
    /// The first speech frame came and has not been reported yet.
    speech_news: bool,
}

impl Recorder {
    pub fn new(spec: RecordSpec) -> Recorder {
        let capacity = samples_in(spec.max).min(RATE * 60);
        Recorder {
            spec,
            samples: Vec::with_capacity(capacity),
            pending: 0,
            last_speech: None,
            silent_run: 0,
            speech_news: false,
        }
    }

    /// Adds decoded audio; returns the recording when this ended it.
    pub fn push(&mut self, audio: &[i16]) -> Option<Recording> {
        let room = samples_in(self.spec.max).saturating_sub(self.samples.len());
        let taken = &audio[..audio.len().min(room)];
        self.samples.extend_from_slice(taken);
        self.pending += taken.len();
        while self.pending >= FRAME {
            let start = self.samples.len() - self.pending;
            let frame = &self.samples[start..start + FRAME];
            self.pending -= FRAME;
            if mean_level(frame) >= u32::from(self.spec.level) {
                self.speech_news |= self.last_speech.is_none();
                self.last_speech = Some(start + FRAME);
                self.silent_run = 0;
            } else {
                self.silent_run += FRAME;
            }
            let end = match self.last_speech {
                Some(_) if self.silent_run >= samples_in(self.spec.silence) => {
                    Some(RecordEnd::Silence)
                }
                None if self.silent_run >= samples_in(self.spec.no_speech) => {
                    Some(RecordEnd::NoSpeech)
                }
                _ => None,
            };
            if let Some(end) = end {
                return Some(self.finish(end));
            }
        }
        (self.samples.len() >= samples_in(self.spec.max)).then(|| self.finish(RecordEnd::MaxLength))
    }

    /// True once, after the first frame of speech: the caller has started
    /// talking (so a timer waiting for that can stop).
    pub fn speech_started(&mut self) -> bool {
        std::mem::take(&mut self.speech_news)
    }

    /// Ends the recording now (a key, a timer, the call's end).
    pub fn stop(&mut self) -> Recording {
        self.finish(RecordEnd::Stopped)
    }

    fn finish(&mut self, end: RecordEnd) -> Recording {
        let mut samples = std::mem::take(&mut self.samples);
        let heard_speech = self.last_speech.is_some();
        match self.last_speech {
            Some(last) => samples.truncate((last + TAIL).min(samples.len())),
            None => samples.clear(),
        }
        Recording {
            end,
            samples,
            heard_speech,
        }
    }
}

fn samples_in(duration: Duration) -> usize {
    (duration.as_millis() as usize).saturating_mul(RATE) / 1000
}

fn mean_level(frame: &[i16]) -> u32 {
    let sum: u64 = frame.iter().map(|s| u64::from(s.unsigned_abs())).sum();
    (sum / frame.len().max(1) as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RecordSpec {
        RecordSpec {
            max: Duration::from_secs(10),
            silence: Duration::from_secs(2),
            no_speech: Duration::from_secs(3),
            level: 300,
        }
    }

    /// `ms` of a 400 Hz tone at amplitude 4000 (mean level about 2500).
    fn speech(ms: usize) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| {
                let phase = i as f64 * 400.0 * std::f64::consts::TAU / 8000.0;
                (phase.sin() * 4000.0) as i16
            })
            .collect()
    }

    /// `ms` of line noise well under the level.
    fn quiet(ms: usize) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| if i % 2 == 0 { 40 } else { -40 })
            .collect()
    }

    /// Feeds `audio` in 20 ms packets, as RTP brings it.
    fn feed(recorder: &mut Recorder, audio: &[i16]) -> Option<Recording> {
        audio.chunks(160).find_map(|packet| recorder.push(packet))
    }

    #[test]
    fn speech_then_silence_ends_with_a_short_tail() {
        let mut recorder = Recorder::new(spec());
        assert_eq!(feed(&mut recorder, &quiet(1000)), None);
        assert!(!recorder.speech_started());
        assert_eq!(feed(&mut recorder, &speech(3000)), None);
        assert!(recorder.speech_started(), "reported once");
        assert!(!recorder.speech_started());
        let done = feed(&mut recorder, &quiet(5000)).expect("ended by silence");
        assert_eq!(done.end, RecordEnd::Silence);
        assert!(done.heard_speech);
        // The leading second of quiet, 3 s of speech, a half-second tail.
        assert_eq!(done.samples.len(), 8 * (1000 + 3000 + 500));
        assert_eq!(&done.samples[8000..8000 + 160], &speech(20)[..]);
    }

    #[test]
    fn nothing_said_ends_empty_after_the_no_speech_time() {
        let mut recorder = Recorder::new(spec());
        assert_eq!(feed(&mut recorder, &quiet(2980)), None);
        let done = feed(&mut recorder, &quiet(40)).expect("no speech");
        assert_eq!(done.end, RecordEnd::NoSpeech);
        assert!(!done.heard_speech);
        assert!(done.samples.is_empty());
    }

    #[test]
    fn the_maximum_length_cuts_a_long_speaker_off() {
        let mut recorder = Recorder::new(spec());
        let done = feed(&mut recorder, &speech(12_000)).expect("max length");
        assert_eq!(done.end, RecordEnd::MaxLength);
        assert_eq!(done.samples.len(), 8 * 10_000);
        assert_eq!(done.duration(), Duration::from_secs(10));
    }

    #[test]
    fn a_stop_keeps_what_was_said() {
        let mut recorder = Recorder::new(spec());
        assert_eq!(feed(&mut recorder, &speech(1500)), None);
        assert_eq!(feed(&mut recorder, &quiet(1000)), None);
        let done = recorder.stop();
        assert_eq!(done.end, RecordEnd::Stopped);
        assert_eq!(done.samples.len(), 8 * (1500 + 500));
    }

    #[test]
    fn short_pauses_inside_speech_do_not_end_it() {
        let mut recorder = Recorder::new(spec());
        for _ in 0..3 {
            assert_eq!(feed(&mut recorder, &speech(800)), None);
            assert_eq!(feed(&mut recorder, &quiet(1500)), None);
        }
        let done = feed(&mut recorder, &quiet(1000)).expect("silence");
        assert_eq!(done.end, RecordEnd::Silence);
    }

    #[test]
    fn odd_packet_sizes_are_judged_in_whole_frames() {
        let mut recorder = Recorder::new(spec());
        let audio = [speech(1000), quiet(2500)].concat();
        let done = audio
            .chunks(77)
            .find_map(|packet| recorder.push(packet))
            .expect("silence");
        assert_eq!(done.end, RecordEnd::Silence);
        assert_eq!(done.samples.len(), 8 * 1500);
    }
}
