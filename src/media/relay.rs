//! Media of a bridged transfer, sans-IO: the audio that crosses between the
//! caller's RTP session and the agent leg's, and the ringback the caller
//! hears while the agent's phone rings.
//!
//! Each leg keeps its own RTP stream (SSRC, sequence numbers, timestamps,
//! packet time and codec: its `MediaSession`); what crosses is linear PCM.
//! A leg decodes what it receives into its `heard` queue, the worker moves
//! it to the other leg's `speak` queue, and that leg encodes a frame per
//! packet time in its own codec, so PCMU↔PCMA transcoding and different
//! packet times need nothing more. The queue waits for a little audio
//! before it starts (and after it runs dry) so that packets arriving
//! either side of a worker tick do not chop the sound, and drops the
//! oldest audio when it holds too much (the two sides' clocks drift).

use super::playback::{PlayItem, Playlist};
use super::prompt::Prompt;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// Audio held before playing out starts: 40 ms at 8 kHz.
const PRIME_SAMPLES: usize = 320;
/// The most audio a queue holds: 200 ms at 8 kHz.
const MAX_SAMPLES: usize = 1600;

/// Linear audio on its way from one leg to the other.
#[derive(Debug, Default)]
pub struct SampleQueue {
    samples: VecDeque<i16>,
    playing: bool,
    /// Samples dropped because the queue was full (clock drift, bursts).
    pub overflowed: u64,
}

impl SampleQueue {
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn push(&mut self, samples: &[i16]) {
        self.samples.extend(samples.iter().copied());
        if self.samples.len() > MAX_SAMPLES {
            let excess = self.samples.len() - PRIME_SAMPLES;
            self.samples.drain(..excess);
            self.overflowed += excess as u64;
        }
    }

    /// Moves everything queued here to the end of `other`.
    pub fn move_into(&mut self, other: &mut SampleQueue) {
        let (front, back) = self.samples.as_slices();
        other.push(front);
        other.push(back);
        self.samples.clear();
    }

    /// Fills `out` with the next frame; silence while priming or when the
    /// queue ran dry. Returns whether any queued audio went out.
    pub fn pop_frame(&mut self, out: &mut [i16]) -> bool {
        if !self.playing && self.samples.len() >= out.len() + PRIME_SAMPLES {
            self.playing = true;
        }
        if !self.playing {
            out.fill(0);
            return false;
        }
        let available = self.samples.len().min(out.len());
        for (slot, sample) in out.iter_mut().zip(self.samples.drain(..available)) {
            *slot = sample;
        }
        out[available..].fill(0);
        if available < out.len() {
            // Ran dry: build up a margin again before playing on.
            self.playing = false;
        }
        available > 0
    }
}

/// The ringback tone the caller hears while the target rings: 450 Hz,
/// one second on and four off, the ringback tone of Chinese networks
/// (YD/T 1065), so a caller of the 10000 hotline hears the familiar sound.
pub fn ringback() -> Playlist {
    const RATE: f64 = 8000.0;
    const LEVEL: f64 = 0.25 * 32767.0; // about -12 dBFS
    let tone: Vec<i16> = (0..8000)
        .map(|n| {
            let t = f64::from(n) / RATE;
            (LEVEL * (2.0 * std::f64::consts::PI * 450.0 * t).sin()).round() as i16
        })
        .collect();
    Playlist {
        items: vec![
            PlayItem::Prompt(Arc::new(Prompt::from_samples("ringback", tone))),
            PlayItem::Silence(Duration::from_secs(4)),
        ],
        looping: true,
        barge_in: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_primes_before_playing_and_after_running_dry() {
        let mut queue = SampleQueue::default();
        let mut frame = [7i16; 160];
        queue.push(&[1; 160]);
        assert!(!queue.pop_frame(&mut frame), "one frame is not enough");
        assert!(frame.iter().all(|&s| s == 0));
        queue.push(&[2; 320]);
        assert!(queue.pop_frame(&mut frame));
        assert!(frame.iter().all(|&s| s == 1));
        assert!(queue.pop_frame(&mut frame));
        assert!(queue.pop_frame(&mut frame));
        assert!(frame.iter().all(|&s| s == 2));
        assert!(queue.is_empty());
        assert!(!queue.pop_frame(&mut frame), "dry: silence");
        queue.push(&[3; 160]);
        assert!(!queue.pop_frame(&mut frame), "priming again");
    }

    #[test]
    fn a_short_frame_is_padded_with_silence() {
        let mut queue = SampleQueue::default();
        queue.push(&[5; 820]);
        let mut frame = [9i16; 480];
        assert!(queue.pop_frame(&mut frame));
        let mut frame = [9i16; 480];
        assert!(queue.pop_frame(&mut frame));
        assert!(frame[..340].iter().all(|&s| s == 5));
        assert!(frame[340..].iter().all(|&s| s == 0));
    }

    #[test]
    fn a_full_queue_drops_the_oldest_audio() {
        let mut queue = SampleQueue::default();
        queue.push(&[1; 1600]);
        queue.push(&[2; 160]);
        assert_eq!(queue.len(), PRIME_SAMPLES);
        assert_eq!(queue.overflowed, 1760 - PRIME_SAMPLES as u64);
        let mut other = SampleQueue::default();
        queue.move_into(&mut other);
        assert!(queue.is_empty());
        assert_eq!(other.len(), PRIME_SAMPLES);
    }

    #[test]
    fn ringback_is_one_second_of_450_hz_then_four_of_silence_looping() {
        let playlist = ringback();
        assert!(playlist.looping);
        assert!(!playlist.barge_in);
        let PlayItem::Prompt(tone) = &playlist.items[0] else {
            panic!("tone first");
        };
        assert_eq!(tone.duration(), Duration::from_secs(1));
        let pcm = tone.encoded(crate::sip::sdp::Codec::Pcmu);
        let mut samples = Vec::new();
        super::super::g711::decode(crate::sip::sdp::Codec::Pcmu, pcm, &mut samples);
        // 450 Hz: 900 zero crossings a second.
        let crossings = samples
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        assert!((895..=905).contains(&crossings), "{crossings}");
        assert!(matches!(playlist.items[1], PlayItem::Silence(d) if d == Duration::from_secs(4)));
    }
}
