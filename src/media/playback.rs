//! What a call plays, frame by frame: a playlist of prompts and pauses
//! turned into one continuous stream of G.711 frames.
//!
//! A [`Playback`] walks its [`Playlist`] and copies each frame's bytes out
//! of the prompts' shared, pre-encoded audio ([`Prompt::encoded`]), so a
//! frame costs a few `memcpy`s and no allocation, and thousands of calls
//! can play the same prompt from one copy. Prompts follow each other with no
//! gap: a frame may end one prompt and start the next. Pauses are G.711
//! silence. When the playlist runs out, the rest of that frame is silence and
//! [`FrameStatus::Finished`] is returned, once; a looping playlist starts over
//! instead and never finishes.
//!
//! It is pure: no clock, no I/O. The caller paces the frames.

use crate::media::g711;
use crate::media::prompt::{samples_to_duration, Prompt, SAMPLE_RATE};
use crate::sip::sdp::Codec;
use std::sync::Arc;
use std::time::Duration;

/// One thing to play.
#[derive(Debug, Clone)]
pub enum PlayItem {
    /// A prompt, played in full.
    Prompt(Arc<Prompt>),
    /// A pause of G.711 silence, rounded to whole 8 kHz samples.
    Silence(Duration),
}

impl PlayItem {
    /// How many 8 kHz samples (G.711 bytes) the item plays for.
    fn len(&self, codec: Codec) -> usize {
        match self {
            PlayItem::Prompt(prompt) => prompt.encoded(codec).len(),
            PlayItem::Silence(duration) => duration_to_samples(*duration),
        }
    }
}

/// What to play and how.
#[derive(Debug, Clone, Default)]
pub struct Playlist {
    /// Played in order, back to back.
    pub items: Vec<PlayItem>,
    /// Start over after the last item instead of finishing.
    pub looping: bool,
    /// Whether caller input (a DTMF digit) may interrupt the playlist.
    /// [`Playback`] only reports it; the caller acts on it.
    pub barge_in: bool,
}

/// What a call to [`Playback::next_frame`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    /// The frame is playlist audio (prompts and pauses).
    Playing,
    /// The playlist ended within this frame (possibly exactly at its end);
    /// the rest of the frame is silence. Returned once per playback.
    Finished,
    /// The playlist had already finished; the frame is all silence.
    Idle,
}

/// Plays a playlist as one continuous stream of fixed-size G.711 frames
/// (160 bytes for 20 ms, or any other packet time).
#[derive(Debug)]
pub struct Playback {
    playlist: Playlist,
    codec: Codec,
    silence: u8,
    samples_per_frame: usize,
    /// The item being played and how many of its samples are done.
    index: usize,
    offset: usize,
    /// Playlist samples played so far, over all loops.
    played: u64,
    finished: bool,
}

impl Playback {
    /// Starts `playlist` in `codec`, `samples_per_frame` samples (bytes) per
    /// frame: 8 × the packet time in ms, e.g. 160 for 20 ms. A frame size of
    /// 0 is taken as 1. A looping playlist with nothing to play (no items,
    /// or only empty ones) finishes like a non-looping one.
    pub fn new(playlist: Playlist, codec: Codec, samples_per_frame: usize) -> Playback {
        let mut playlist = playlist;
        if playlist.items.iter().all(|item| item.len(codec) == 0) {
            playlist.looping = false;
        }
        Playback {
            playlist,
            codec,
            silence: g711::silence(codec),
            samples_per_frame: samples_per_frame.max(1),
            index: 0,
            offset: 0,
            played: 0,
            finished: false,
        }
    }

    /// Writes the next frame into `out[..samples_per_frame]` (or all of a
    /// shorter `out`): playlist audio, then silence once the playlist has
    /// ended. Never allocates.
    pub fn next_frame(&mut self, out: &mut [u8]) -> FrameStatus {
        let frame_len = self.samples_per_frame.min(out.len());
        let out = &mut out[..frame_len];
        if self.finished {
            out.fill(self.silence);
            return FrameStatus::Idle;
        }

        let mut filled = 0;
        while filled < frame_len {
            let Some(item) = self.playlist.items.get(self.index) else {
                if self.playlist.looping {
                    // Non-empty by construction, so the next pass advances.
                    self.index = 0;
                    self.offset = 0;
                    continue;
                }
                break;
            };
            let len = item.len(self.codec);
            let take = len.saturating_sub(self.offset).min(frame_len - filled);
            let target = &mut out[filled..filled + take];
            match item {
                PlayItem::Prompt(prompt) => {
                    let audio = prompt.encoded(self.codec);
                    target.copy_from_slice(&audio[self.offset..self.offset + take]);
                }
                PlayItem::Silence(_) => target.fill(self.silence),
            }
            filled += take;
            self.offset += take;
            self.played = self
                .played
                .saturating_add(u64::try_from(take).unwrap_or(u64::MAX));
            if self.offset >= len {
                self.index += 1;
                self.offset = 0;
            }
        }

        // Empty items left at the end must not delay the finish by a frame.
        while self
            .playlist
            .items
            .get(self.index)
            .is_some_and(|item| item.len(self.codec) == 0)
        {
            self.index += 1;
        }
        if self.index >= self.playlist.items.len() && !self.playlist.looping {
            out[filled..].fill(self.silence);
            self.finished = true;
            FrameStatus::Finished
        } else {
            FrameStatus::Playing
        }
    }

    /// Whether caller input may interrupt this playlist.
    pub fn barge_in(&self) -> bool {
        self.playlist.barge_in
    }

    /// Whether the playlist has ended ([`FrameStatus::Finished`] has been
    /// returned). A looping playlist never ends.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// How much of the playlist has been played, counting every loop and
    /// not counting the silence after the end.
    pub fn position(&self) -> Duration {
        samples_to_duration(usize::try_from(self.played).unwrap_or(usize::MAX))
    }

    /// The frame size in samples (bytes) this playback was started with.
    pub fn samples_per_frame(&self) -> usize {
        self.samples_per_frame
    }

    /// The codec the frames are encoded in.
    pub fn codec(&self) -> Codec {
        self.codec
    }
}

/// A duration in whole 8 kHz samples, rounded to the nearest.
fn duration_to_samples(duration: Duration) -> usize {
    let nanos_per_sample = 1_000_000_000 / u128::from(SAMPLE_RATE);
    let samples = (duration.as_nanos() + nanos_per_sample / 2) / nanos_per_sample;
    usize::try_from(samples).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prompt of `len` distinct-ish samples, so misplaced bytes show.
    fn prompt(name: &str, len: usize, seed: i32) -> Arc<Prompt> {
        let samples = (0..len)
            .map(|i| ((i as i32 * 211 + seed * 7717) % 60000 - 30000) as i16)
            .collect();
        Arc::new(Prompt::from_samples(name, samples))
    }

    fn playlist(items: Vec<PlayItem>, looping: bool) -> Playlist {
        Playlist {
            items,
            looping,
            barge_in: false,
        }
    }

    /// Plays until finished (at most `max_frames`), returning the bytes and
    /// the status of every frame.
    fn play(playback: &mut Playback, max_frames: usize) -> (Vec<u8>, Vec<FrameStatus>) {
        let mut frame = vec![0xAAu8; playback.samples_per_frame()];
        let mut bytes = Vec::new();
        let mut statuses = Vec::new();
        for _ in 0..max_frames {
            let status = playback.next_frame(&mut frame);
            bytes.extend_from_slice(&frame);
            statuses.push(status);
            if status == FrameStatus::Finished {
                break;
            }
        }
        (bytes, statuses)
    }

    #[test]
    fn prompts_are_concatenated_without_gaps() {
        // 250 + 130 samples: frames of 160 straddle both boundaries.
        let a = prompt("a", 250, 1);
        let b = prompt("b", 130, 2);
        let items = vec![PlayItem::Prompt(a.clone()), PlayItem::Prompt(b.clone())];
        let mut playback = Playback::new(playlist(items, false), Codec::Pcmu, 160);
        let (bytes, statuses) = play(&mut playback, 10);

        let silence = g711::silence(Codec::Pcmu);
        let mut expected = Vec::new();
        expected.extend_from_slice(&a.pcmu);
        expected.extend_from_slice(&b.pcmu);
        expected.resize(480, silence);
        assert_eq!(bytes, expected);
        assert_eq!(
            statuses,
            [
                FrameStatus::Playing,
                FrameStatus::Playing,
                FrameStatus::Finished
            ]
        );
        assert!(playback.is_finished());
        assert_eq!(playback.position(), Duration::from_micros(380 * 125));
    }

    #[test]
    fn finished_is_reported_once_then_idle_silence() {
        let a = prompt("a", 100, 3);
        let mut playback =
            Playback::new(playlist(vec![PlayItem::Prompt(a)], false), Codec::Pcmu, 160);
        assert!(!playback.is_finished());
        let mut frame = [0u8; 160];
        assert_eq!(playback.next_frame(&mut frame), FrameStatus::Finished);
        assert!(playback.is_finished());
        for _ in 0..3 {
            frame.fill(0);
            assert_eq!(playback.next_frame(&mut frame), FrameStatus::Idle);
            assert!(frame.iter().all(|&b| b == g711::silence(Codec::Pcmu)));
        }
        assert_eq!(playback.position(), Duration::from_micros(100 * 125));
    }

    #[test]
    fn ending_exactly_at_a_frame_boundary_finishes_in_that_frame() {
        let a = prompt("a", 320, 4);
        let items = vec![
            PlayItem::Prompt(a.clone()),
            PlayItem::Silence(Duration::ZERO),
        ];
        let mut playback = Playback::new(playlist(items, false), Codec::Pcma, 160);
        let (bytes, statuses) = play(&mut playback, 10);
        assert_eq!(bytes, &a.pcma[..]);
        assert_eq!(statuses, [FrameStatus::Playing, FrameStatus::Finished]);
    }

    #[test]
    fn silence_items_play_for_their_duration() {
        let a = prompt("a", 100, 5);
        let b = prompt("b", 100, 6);
        let items = vec![
            PlayItem::Prompt(a.clone()),
            PlayItem::Silence(Duration::from_millis(30)),
            PlayItem::Prompt(b.clone()),
        ];
        let mut playback = Playback::new(playlist(items, false), Codec::Pcma, 160);
        let (bytes, statuses) = play(&mut playback, 10);

        let silence = g711::silence(Codec::Pcma);
        let mut expected = Vec::new();
        expected.extend_from_slice(&a.pcma);
        expected.extend(std::iter::repeat_n(silence, 240)); // 30 ms at 8 kHz
        expected.extend_from_slice(&b.pcma);
        expected.resize(480, silence);
        assert_eq!(bytes, expected);
        assert_eq!(statuses.last(), Some(&FrameStatus::Finished));
        assert_eq!(playback.position(), Duration::from_millis(55));
    }

    #[test]
    fn pcma_and_pcmu_use_their_own_encoding_and_silence() {
        let a = prompt("a", 200, 7);
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut playback = Playback::new(
                playlist(vec![PlayItem::Prompt(a.clone())], false),
                codec,
                160,
            );
            let (bytes, _) = play(&mut playback, 10);
            assert_eq!(&bytes[..200], &a.encoded(codec)[..]);
            assert!(bytes[200..].iter().all(|&b| b == g711::silence(codec)));
            assert_eq!(playback.codec(), codec);
        }
        assert_ne!(a.pcmu, a.pcma);
    }

    #[test]
    fn looping_repeats_seamlessly_and_never_finishes() {
        let a = prompt("a", 150, 8);
        let items = vec![
            PlayItem::Prompt(a.clone()),
            PlayItem::Silence(Duration::from_millis(10)),
        ];
        let mut playback = Playback::new(playlist(items, true), Codec::Pcmu, 160);
        let (bytes, statuses) = play(&mut playback, 20);
        assert_eq!(statuses.len(), 20);
        assert!(statuses.iter().all(|&s| s == FrameStatus::Playing));
        assert!(!playback.is_finished());

        let silence = g711::silence(Codec::Pcmu);
        let mut one_pass = a.pcmu.to_vec();
        one_pass.extend(std::iter::repeat_n(silence, 80));
        let expected: Vec<u8> = one_pass.iter().copied().cycle().take(20 * 160).collect();
        assert_eq!(bytes, expected);
        assert_eq!(playback.position(), Duration::from_millis(400));
    }

    #[test]
    fn every_packet_time_gives_frames_of_its_size() {
        let a = prompt("a", 1000, 9);
        for ptime_ms in [10usize, 20, 30, 40] {
            let samples_per_frame = ptime_ms * 8;
            let mut playback = Playback::new(
                playlist(vec![PlayItem::Prompt(a.clone())], false),
                Codec::Pcmu,
                samples_per_frame,
            );
            let (bytes, statuses) = play(&mut playback, 1000);
            let frames = 1000usize.div_ceil(samples_per_frame);
            assert_eq!(statuses.len(), frames, "ptime {ptime_ms}");
            assert_eq!(bytes.len(), frames * samples_per_frame);
            assert_eq!(&bytes[..1000], &a.pcmu[..]);
            assert!(bytes[1000..]
                .iter()
                .all(|&b| b == g711::silence(Codec::Pcmu)));
            assert_eq!(playback.position(), Duration::from_millis(125));
        }
    }

    #[test]
    fn frame_is_the_configured_size_even_if_the_buffer_is_larger() {
        let a = prompt("a", 50, 10);
        let mut playback = Playback::new(
            playlist(vec![PlayItem::Prompt(a.clone())], false),
            Codec::Pcmu,
            80,
        );
        let mut buffer = [0x11u8; 200];
        assert_eq!(playback.next_frame(&mut buffer), FrameStatus::Finished);
        assert_eq!(&buffer[..50], &a.pcmu[..]);
        assert!(buffer[50..80]
            .iter()
            .all(|&b| b == g711::silence(Codec::Pcmu)));
        assert!(buffer[80..].iter().all(|&b| b == 0x11));
    }

    #[test]
    fn empty_playlist_finishes_at_once() {
        for looping in [false, true] {
            let mut playback = Playback::new(playlist(Vec::new(), looping), Codec::Pcma, 160);
            let mut frame = [0u8; 160];
            assert_eq!(playback.next_frame(&mut frame), FrameStatus::Finished);
            assert!(frame.iter().all(|&b| b == g711::silence(Codec::Pcma)));
            assert_eq!(playback.next_frame(&mut frame), FrameStatus::Idle);
            assert_eq!(playback.position(), Duration::ZERO);
        }
        // Only empty items, looping: must not spin forever.
        let items = vec![
            PlayItem::Silence(Duration::ZERO),
            PlayItem::Prompt(prompt("empty", 0, 0)),
        ];
        let mut playback = Playback::new(playlist(items, true), Codec::Pcmu, 160);
        assert_eq!(playback.next_frame(&mut [0u8; 160]), FrameStatus::Finished);
    }

    #[test]
    fn barge_in_is_reported() {
        let mut list = playlist(vec![PlayItem::Silence(Duration::from_millis(20))], false);
        assert!(!Playback::new(list.clone(), Codec::Pcmu, 160).barge_in());
        list.barge_in = true;
        assert!(Playback::new(list, Codec::Pcmu, 160).barge_in());
    }

    #[test]
    fn silence_durations_round_to_whole_samples() {
        assert_eq!(duration_to_samples(Duration::from_millis(20)), 160);
        assert_eq!(duration_to_samples(Duration::from_micros(62)), 0);
        assert_eq!(duration_to_samples(Duration::from_micros(63)), 1);
        assert_eq!(duration_to_samples(Duration::from_secs(1)), 8000);
    }
}
