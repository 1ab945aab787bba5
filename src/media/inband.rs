//! In-band DTMF detection: finds the sixteen DTMF keys (`0`–`9`, `*`, `#`,
//! `A`–`D`) in decoded 8 kHz 16-bit linear audio, for calls whose peer sends
//! no RFC 4733 telephone-event. Acceptance follows ITU-T Q.24: each tone
//! within ±1.5 % of its nominal frequency is accepted and ±3.5 % rejected,
//! tones of 40 ms count and shorter ones do not, two presses of one key need
//! a 40 ms pause, twist and level are limited, and speech must not talk
//! it off. `docs/dtmf-inband.md` has the design, the measured accept/reject
//! table and the command that regenerates it.
//!
//! How: the audio is cut into 34-sample hops (4.25 ms). Every hop, eight
//! Goertzel filters over the last 102 samples (three hops, 12.75 ms) give a
//! cheap screen: the strongest row and column tone must hold a fair share of
//! the window's energy. Only windows that pass (tones, and some speech) get
//! the exact test: each tone's frequency is measured from the phase advance
//! between two overlapping Hann-windowed parts of the window, its amplitude
//! and phase at that frequency; both tones are subtracted, and the residue
//! (noise, speech, distortion) and the second harmonics in it must be small.
//! A key is reported once six windows in a row hold it and their average
//! frequency deviation and twist are within limits; it is over once ten
//! windows in a row do not hold it.
//!
//! The module owns the detector state (728 bytes per call; the filter tables
//! are shared). It is pure: no I/O, clock, logging or allocation except the
//! returned digits, and no input can make it panic. It knows nothing of RTP,
//! codecs or time beyond counting samples; the caller decodes G.711 and
//! feeds every packet of the call, in order, to one detector.

use std::f32::consts::PI;
use std::sync::OnceLock;

/// Sample rate the detector works at, Hz.
const RATE_HZ: f32 = 8000.0;
/// Samples per hop: a window is examined every `HOP` samples (4.25 ms).
const HOP: usize = 34;
/// Samples per window (12.75 ms): long enough to tell 697 Hz from 770 Hz.
const WIN: usize = 3 * HOP;
/// Length of each of the two overlapping half-windows whose phase difference
/// gives a tone's frequency; the second starts `HOP` samples after the first.
const SEG: usize = 2 * HOP;
/// Low-group (row) frequencies, Hz.
const ROW_HZ: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// High-group (column) frequencies, Hz.
const COL_HZ: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// The keypad: `KEYS[row][column]`.
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Peak of a 0 dBm0 sine with full scale (32768) as 1.0: G.711's largest
/// sine is +3.14 dBm0 (A-law; µ-law's +3.17 dBm0 is within 0.03 dB), so
/// 0 dBm0 is a sine of peak 32768 · 10^(−3.14/20) ≈ 22 827.
const DBM0_PEAK: f32 = 0.696_627;
/// The cheap screen passes a window when the best row and column filters hold
/// at least this share of the window energy (DC removed). A tone loses up to
/// 1.4 dB in the 102-sample filter at 1.5 % off (1633 Hz) and 4 dB at 2.5 %,
/// hence the low value; the exact test decides.
const SCREEN_SHARE: f32 = 0.3;
/// The screen's level floor is this many dB below the configured one (same
/// filter loss).
const SCREEN_LEVEL_MARGIN_DB: f32 = 6.0;
/// While a key is held, a window whose screen finds that key's tones with
/// this share of the energy continues it without the exact test (a window
/// missing more than 5 of its 102 samples to a pause has a smaller share).
const HELD_SHARE: f32 = 0.95;
/// Slack on the frequency and twist limits for a single window: one
/// 12.75 ms window measures a weak tone in noise (15 dB below both tones,
/// twist 8 dB) with errors up to about 1 % and 1.5 dB, so each window is
/// held to limits this much looser, and a key press to the configured ones
/// on the average over its windows.
const DEVIATION_SLACK: f32 = 0.01;
const TWIST_SLACK_DB: f32 = 2.0;
/// A second harmonic only counts when it also stands this far above what
/// the residue's noise puts into its filter on average (13 dB: white noise
/// alone exceeds that in one test in 500 million; at 10 dB it was one in
/// 22 000, and a weak tone in noise lost windows to it).
const HARMONIC_OVER_NOISE: f32 = 20.0;

/// Acceptance limits of the detector. The defaults sit halfway between the
/// Q.24 "must accept" and "must reject" points, so both hold with margin;
/// `docs/dtmf-inband.md` has the measured table.
#[derive(Debug, Clone)]
pub struct InbandConfig {
    /// Lowest level of each of the two tones, dBm0 (0 dBm0 is a sine of
    /// peak 22 827 in 16-bit samples). Default −30: tones of −25 dBm0 are
    /// detected, −35 dBm0 are not.
    pub min_level_dbm0: f32,
    /// Largest deviation of either tone from its nominal frequency, as a
    /// fraction. Default 0.025 (±2.5 %): ±1.5 % is accepted, ±3.5 % rejected.
    pub max_freq_deviation: f32,
    /// Largest normal twist (row tone louder than column tone), dB.
    /// Default 9: 8 dB is accepted, 10 dB rejected.
    pub max_normal_twist_db: f32,
    /// Largest reverse twist (column tone louder than row tone), dB.
    /// Default 6: 4 dB is accepted, 8 dB rejected.
    pub max_reverse_twist_db: f32,
    /// The two tones must exceed everything else in a window (noise, speech,
    /// distortion) by this much, dB. Default 12: a signal-to-noise ratio of
    /// 15 dB is accepted.
    pub min_snr_db: f32,
    /// Each tone's second harmonic must be at least this far below the tone,
    /// dB (pure tones have none; voiced speech does). Default 20.
    pub min_harmonic_rejection_db: f32,
    /// Shortest tone that counts as a key press, ms. Default 40; with the
    /// window and hop sizes, a 40 ms tone always counts and a 30 ms tone
    /// never does.
    pub min_tone_ms: u32,
    /// Shortest pause that separates two presses of the same key, ms.
    /// Default 40: a 40 ms pause always separates, a dropout of up to 25 ms
    /// never does (the key is still held).
    pub min_pause_ms: u32,
}

impl Default for InbandConfig {
    fn default() -> Self {
        InbandConfig {
            min_level_dbm0: -30.0,
            max_freq_deviation: 0.025,
            max_normal_twist_db: 9.0,
            max_reverse_twist_db: 6.0,
            min_snr_db: 12.0,
            min_harmonic_rejection_db: 20.0,
            min_tone_ms: 40,
            min_pause_ms: 40,
        }
    }
}

/// What one window held. Only `Tone` matters to the key logic; the other
/// variants name the test that failed (kept apart for the measurements in
/// the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The cheap screen found no dominant row and column tone.
    Quiet,
    /// A tone is off its nominal frequency by more than a window may be.
    Frequency,
    /// A tone is below the level floor.
    Level,
    /// The two tones' levels differ by more than a window may.
    Twist,
    /// Too much besides the two tones (noise, speech, partial tone).
    Noise,
    /// A tone has a second harmonic.
    Harmonic,
    /// A DTMF key.
    Tone(char),
}

/// What the exact test measured in a window that held a key; summed over
/// the windows of a candidate key.
#[derive(Debug, Clone, Copy, Default)]
struct Measure {
    /// Frequency deviation of the row and column tone, as fractions.
    row_dev: f32,
    col_dev: f32,
    /// Mean power of the row and column tone (full scale = 1.0).
    row_power: f32,
    col_power: f32,
}

impl Measure {
    fn plus(self, other: Measure) -> Measure {
        Measure {
            row_dev: self.row_dev + other.row_dev,
            col_dev: self.col_dev + other.col_dev,
            row_power: self.row_power + other.row_power,
            col_power: self.col_power + other.col_power,
        }
    }
}

/// Filter constants shared by every detector.
#[derive(Debug)]
struct Tables {
    /// Goertzel coefficient 2·cos ω for rows 0–3 then columns 0–3.
    coef: [f32; 8],
    /// cos ω and sin ω, to finish a Goertzel filter into a complex value.
    cos: [f32; 8],
    sin: [f32; 8],
    /// e^(−jω·HOP): joins hop results into a window and removes the nominal
    /// phase advance from a half-window phase difference.
    rot: [(f32, f32); 8],
    /// Hann(SEG)[n] · (cos ωn, sin ωn) for the half-window transforms.
    seg: [[(f32, f32); SEG]; 8],
    /// Hann window over the whole window, its sum and its sum of squares.
    hann: [f32; WIN],
    hann_sum: f32,
    hann_sq_sum: f32,
}

impl Tables {
    fn build() -> Tables {
        let mut t = Tables {
            coef: [0.0; 8],
            cos: [0.0; 8],
            sin: [0.0; 8],
            rot: [(0.0, 0.0); 8],
            seg: [[(0.0, 0.0); SEG]; 8],
            hann: [0.0; WIN],
            hann_sum: 0.0,
            hann_sq_sum: 0.0,
        };
        for (k, hz) in ROW_HZ.iter().chain(COL_HZ.iter()).enumerate() {
            let w = omega(*hz);
            t.coef[k] = 2.0 * w.cos();
            t.cos[k] = w.cos();
            t.sin[k] = w.sin();
            let hop = w * HOP as f32;
            t.rot[k] = (hop.cos(), -hop.sin());
            for (n, entry) in t.seg[k].iter_mut().enumerate() {
                let h = hann(n, SEG);
                let a = w * n as f32;
                *entry = (h * a.cos(), h * a.sin());
            }
        }
        for (n, h) in t.hann.iter_mut().enumerate() {
            *h = hann(n, WIN);
        }
        t.hann_sum = t.hann.iter().sum();
        t.hann_sq_sum = t.hann.iter().map(|h| h * h).sum();
        t
    }
}

/// Angular frequency, radians per sample.
fn omega(hz: f32) -> f32 {
    2.0 * PI * hz / RATE_HZ
}

/// Symmetric Hann window without zero end points.
fn hann(n: usize, len: usize) -> f32 {
    let s = (PI * (n as f32 + 0.5) / len as f32).sin();
    s * s
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(Tables::build)
}

fn db_to_power(db: f32) -> f32 {
    10f32.powf(db / 10.0)
}

/// Detector for one call's audio direction.
#[derive(Debug, Clone)]
pub struct InbandDetector {
    tables: &'static Tables,
    /// Level floor per tone as mean power (full scale = 1.0).
    min_power: f32,
    /// The cheap screen's floor.
    screen_power: f32,
    max_deviation: f32,
    max_normal_twist: f32,
    max_reverse_twist: f32,
    /// Largest residue power per unit of tone power.
    max_residue: f32,
    /// Largest second-harmonic power per unit of tone power.
    max_harmonic: f32,
    /// Windows in a row that make a key press.
    windows_on: u32,
    /// Windows in a row without the key that end it.
    windows_off: u32,
    /// The last `WIN` samples, scaled to ±1.0; the newest hop is being
    /// filled at `2 * HOP + fill`.
    buf: [f32; WIN],
    fill: usize,
    /// Goertzel results, sums and energies of the last three hops, oldest
    /// first.
    hops: [[(f32, f32); 8]; 3],
    sums: [f32; 3],
    energies: [f32; 3],
    /// The key reported last and still held (its tone has not had a pause).
    held: Option<char>,
    /// Windows in a row without the held key.
    misses: u32,
    /// A key seen in the last `run` windows in a row, not yet reported, and
    /// the sum of those windows' measurements.
    candidate: Option<char>,
    run: u32,
    sum: Measure,
    /// The measurements of the last window that held a key.
    last: Measure,
}

impl InbandDetector {
    /// A detector with these limits, waiting for the first sample of a call.
    pub fn new(config: InbandConfig) -> Self {
        let tone_power = |dbm0: f32| DBM0_PEAK * DBM0_PEAK / 2.0 * db_to_power(dbm0);
        let samples = |ms: u32| ms.saturating_mul(RATE_HZ as u32 / 1000) as usize;
        // A tone of `min_tone_ms` fills at least ⌊(T − WIN)/HOP⌋ windows
        // wherever it falls on the hop grid (40 ms: 6); a pause of
        // `min_pause_ms` spoils at least ⌊(P + WIN)/HOP⌋ − 2 of them
        // (40 ms: 10), windows that lose only a few samples at an edge
        // still passing.
        let windows_on = (samples(config.min_tone_ms).saturating_sub(WIN) / HOP).max(1);
        let windows_off = (samples(config.min_pause_ms).saturating_add(WIN) / HOP)
            .saturating_sub(2)
            .max(1);
        InbandDetector {
            tables: tables(),
            min_power: tone_power(config.min_level_dbm0),
            screen_power: tone_power(config.min_level_dbm0 - SCREEN_LEVEL_MARGIN_DB),
            max_deviation: config.max_freq_deviation,
            max_normal_twist: db_to_power(config.max_normal_twist_db),
            max_reverse_twist: db_to_power(config.max_reverse_twist_db),
            max_residue: db_to_power(-config.min_snr_db),
            max_harmonic: db_to_power(-config.min_harmonic_rejection_db),
            windows_on: u32::try_from(windows_on).unwrap_or(u32::MAX),
            windows_off: u32::try_from(windows_off).unwrap_or(u32::MAX),
            buf: [0.0; WIN],
            fill: 0,
            hops: [[(0.0, 0.0); 8]; 3],
            sums: [0.0; 3],
            energies: [0.0; 3],
            held: None,
            misses: 0,
            candidate: None,
            run: 0,
            sum: Measure::default(),
            last: Measure::default(),
        }
    }

    /// Feed decoded audio (any number of samples, e.g. 160 per 20 ms
    /// packet); returns the digits whose tone has just been accepted, each
    /// key press exactly once. How the audio is cut into calls makes no
    /// difference: the same samples give the same digits.
    pub fn push(&mut self, samples: &[i16]) -> Vec<char> {
        let mut digits = Vec::new();
        self.feed(samples, |_| {}, &mut digits);
        digits
    }

    /// `push`, with every window's verdict shown to `observe`.
    fn feed(
        &mut self,
        mut samples: &[i16],
        mut observe: impl FnMut(Verdict),
        digits: &mut Vec<char>,
    ) {
        while !samples.is_empty() {
            let take = (HOP - self.fill).min(samples.len());
            let (now, rest) = samples.split_at(take);
            let start = 2 * HOP + self.fill;
            for (slot, &s) in self.buf[start..start + take].iter_mut().zip(now) {
                *slot = f32::from(s) * (1.0 / 32768.0);
            }
            self.fill += take;
            samples = rest;
            if self.fill == HOP {
                self.fill = 0;
                let verdict = self.window();
                observe(verdict);
                self.track(verdict, digits);
                self.buf.copy_within(HOP.., 0);
            }
        }
    }

    /// Runs the filters over the hop just completed and judges the window
    /// that ends with it.
    fn window(&mut self) -> Verdict {
        let t = self.tables;
        let mut s1 = [0f32; 8];
        let mut s2 = [0f32; 8];
        let (mut sum, mut energy) = (0f32, 0f32);
        for &x in &self.buf[2 * HOP..] {
            sum += x;
            energy += x * x;
            for k in 0..8 {
                let s0 = x + t.coef[k] * s1[k] - s2[k];
                s2[k] = s1[k];
                s1[k] = s0;
            }
        }
        self.hops[0] = self.hops[1];
        self.hops[1] = self.hops[2];
        self.sums = [self.sums[1], self.sums[2], sum];
        self.energies = [self.energies[1], self.energies[2], energy];
        for k in 0..8 {
            // y = s1 − e^(−jω)·s2 = e^(jω(HOP−1)) · Σ x[n]·e^(−jωn)
            self.hops[2][k] = (s1[k] - t.cos[k] * s2[k], t.sin[k] * s2[k]);
        }
        // Window transform: y0 + y1·r + y2·r² with r = e^(−jω·HOP); mean
        // power of a sine of amplitude A comes out as A²/2.
        let scale = 2.0 / (WIN * WIN) as f32;
        let mut power = [0f32; 8];
        for (k, p) in power.iter_mut().enumerate() {
            let r = t.rot[k];
            let z = cmul(add(cmul(self.hops[2][k], r), self.hops[1][k]), r);
            *p = norm(add(z, self.hops[0][k])) * scale;
        }
        // Power without the DC offset some phones add.
        let mean = self.sums.iter().sum::<f32>() / WIN as f32;
        let total = self.energies.iter().sum::<f32>() / WIN as f32 - mean * mean;
        let row = strongest(&power[..4]);
        let col = strongest(&power[4..]);
        let (pr, pc) = (power[row], power[4 + col]);
        if pr < self.screen_power || pc < self.screen_power || pr + pc < SCREEN_SHARE * total {
            return Verdict::Quiet;
        }
        let key = KEYS[row][col];
        if self.held == Some(key) && pr + pc >= HELD_SHARE * total {
            return Verdict::Tone(key);
        }
        self.examine(row, col, total)
    }

    /// The exact test of a window whose strongest tones are `row`, `col`
    /// (frequency and twist to the per-window limits); a key's measurements
    /// are left in `self.last`.
    fn examine(&mut self, row: usize, col: usize, total: f32) -> Verdict {
        let t = self.tables;
        let x = &self.buf;
        let mut dev = [0f32; 2];
        let mut w = [0f32; 2];
        for ((dev, w), k) in dev.iter_mut().zip(&mut w).zip([row, 4 + col]) {
            let nominal = omega(if k < 4 { ROW_HZ[k] } else { COL_HZ[k - 4] });
            *dev = frequency_offset(x, t, k) / nominal;
            if dev.abs() > self.max_deviation + DEVIATION_SLACK {
                return Verdict::Frequency;
            }
            *w = nominal * (1.0 + *dev);
        }
        // Amplitude·e^(jφ) at the window centre is 2·Z/Σhann; power A²/2.
        let z = hann_dft2(x, &t.hann, w);
        let gain = 2.0 / (t.hann_sum * t.hann_sum);
        let (pr, pc) = (norm(z[0]) * gain, norm(z[1]) * gain);
        if pr < self.min_power || pc < self.min_power {
            return Verdict::Level;
        }
        let slack = db_to_power(TWIST_SLACK_DB);
        if pr > pc * self.max_normal_twist * slack || pc > pr * self.max_reverse_twist * slack {
            return Verdict::Twist;
        }
        // Cheap bound first: when the tones hold less than half of the
        // window, the residue is far too big. (A finer bound from the powers
        // alone would not do: an amplitude 4 % off leaves 8 % of the power.)
        if 2.0 * (pr + pc) < total {
            return Verdict::Noise;
        }
        // Subtract both tones: A·cos(w(n − c) + φ) = Re(p·e^(jwn)) with
        // p = (2Z/Σhann)·e^(−jwc).
        let a = 2.0 / t.hann_sum;
        let centre = (WIN - 1) as f32 / 2.0;
        let mut p = [0, 1].map(|i| cmul((z[i].0 * a, z[i].1 * a), expj(-w[i] * centre)));
        let step = w.map(expj);
        let mut residue = *x;
        let (mut sum, mut energy) = (0f32, 0f32);
        for r in residue.iter_mut() {
            for (p, step) in p.iter_mut().zip(&step) {
                *r -= p.0;
                *p = cmul(*p, *step);
            }
            sum += *r;
            energy += *r * *r;
        }
        let mean = sum / WIN as f32;
        let rest = energy / WIN as f32 - mean * mean;
        if rest > (pr + pc) * self.max_residue {
            return Verdict::Noise;
        }
        // White noise of power `rest` puts 2·rest·Σh²/(Σh)² into a filter.
        let noise = 2.0 * rest * t.hann_sq_sum / (t.hann_sum * t.hann_sum);
        let harmonics = hann_dft2(&residue, &t.hann, w.map(|w| 2.0 * w));
        for (h, p) in harmonics.iter().zip([pr, pc]) {
            let harmonic = norm(*h) * gain;
            if harmonic > p * self.max_harmonic && harmonic > HARMONIC_OVER_NOISE * noise {
                return Verdict::Harmonic;
            }
        }
        self.last = Measure {
            row_dev: dev[0],
            col_dev: dev[1],
            row_power: pr,
            col_power: pc,
        };
        Verdict::Tone(KEYS[row][col])
    }

    /// The key logic: a key is reported, once, when `windows_on` windows in
    /// a row hold it and their average frequencies and twist are within the
    /// configured limits (if not, later windows of the same run can still
    /// bring the average in). It is then held, and not reported again, until
    /// `windows_off` windows in a row do not hold it. A different key can
    /// follow at once.
    fn track(&mut self, verdict: Verdict, digits: &mut Vec<char>) {
        let seen = match verdict {
            Verdict::Tone(key) => Some(key),
            _ => None,
        };
        if let Some(held) = self.held {
            if seen == Some(held) {
                self.misses = 0;
                self.candidate = None;
                self.run = 0;
                return;
            }
            self.misses += 1;
            if self.misses >= self.windows_off {
                self.held = None;
            }
        }
        let Some(key) = seen else {
            self.candidate = None;
            self.run = 0;
            return;
        };
        // Windows of a key that is not held come from `examine`.
        if self.candidate == Some(key) {
            self.run = self.run.saturating_add(1);
            self.sum = self.sum.plus(self.last);
        } else {
            self.candidate = Some(key);
            self.run = 1;
            self.sum = self.last;
        }
        if self.run >= self.windows_on && self.average_within_limits() {
            digits.push(key);
            self.held = Some(key);
            self.misses = 0;
            self.candidate = None;
            self.run = 0;
        }
    }

    fn average_within_limits(&self) -> bool {
        let n = self.run as f32;
        let s = &self.sum;
        (s.row_dev / n).abs() <= self.max_deviation
            && (s.col_dev / n).abs() <= self.max_deviation
            && s.row_power <= s.col_power * self.max_normal_twist
            && s.col_power <= s.row_power * self.max_reverse_twist
    }
}

/// Index of the largest value.
fn strongest(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// Offset of filter `k`'s tone from its nominal frequency, radians per
/// sample: the phase advance between the two Hann-windowed half-windows
/// (`HOP` samples apart) less the nominal advance. Unambiguous to ±117 Hz.
fn frequency_offset(x: &[f32; WIN], t: &Tables, k: usize) -> f32 {
    let (mut a, mut b) = ((0f32, 0f32), (0f32, 0f32));
    for (n, &(c, s)) in t.seg[k].iter().enumerate() {
        let (u, v) = (x[n], x[n + HOP]);
        a = (a.0 + u * c, a.1 - u * s);
        b = (b.0 + v * c, b.1 - v * s);
    }
    let d = cmul(cmul(b, (a.0, -a.1)), t.rot[k]);
    d.1.atan2(d.0) / HOP as f32
}

/// Σ hann[n]·x[n]·e^(−jw(n − c)), c the window centre, at two frequencies
/// at once (two independent rotations keep the processor busy).
fn hann_dft2(x: &[f32; WIN], hann: &[f32; WIN], w: [f32; 2]) -> [(f32, f32); 2] {
    let centre = (WIN - 1) as f32 / 2.0;
    let mut p = w.map(|w| expj(w * centre));
    let step = w.map(|w| expj(-w));
    let mut acc = [(0f32, 0f32); 2];
    for (&v, &h) in x.iter().zip(hann) {
        let hv = h * v;
        for ((acc, p), step) in acc.iter_mut().zip(&mut p).zip(&step) {
            *acc = (acc.0 + hv * p.0, acc.1 + hv * p.1);
            *p = cmul(*p, *step);
        }
    }
    acc
}

fn expj(a: f32) -> (f32, f32) {
    let (s, c) = a.sin_cos();
    (c, s)
}

fn cmul(a: (f32, f32), b: (f32, f32)) -> (f32, f32) {
    (a.0 * b.0 - a.1 * b.1, a.0 * b.1 + a.1 * b.0)
}

fn add(a: (f32, f32), b: (f32, f32)) -> (f32, f32) {
    (a.0 + b.0, a.1 + b.1)
}

fn norm(a: (f32, f32)) -> f32 {
    a.0 * a.0 + a.1 * a.1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::TAU;
    use std::fmt::Write as _;

    const ALL_KEYS: &str = "0123456789*#ABCD";
    /// Alignments and phases each grid condition is tried with per key.
    const VARIANTS: u64 = 3;

    // ---- test signals ------------------------------------------------------

    /// Peak, in 16-bit sample units, of a sine at `dbm0` (0 dBm0 = 22 827:
    /// 3.14 dB below a full-scale sine).
    #[allow(clippy::approx_constant)] // G.711's +3.14 dBm0, not π
    fn peak(dbm0: f64) -> f64 {
        32768.0 * 10f64.powf((dbm0 - 3.14) / 20.0)
    }

    fn key_freqs(key: char) -> (f64, f64) {
        for (r, keys) in KEYS.iter().enumerate() {
            if let Some(c) = keys.iter().position(|&k| k == key) {
                return (f64::from(ROW_HZ[r]), f64::from(COL_HZ[c]));
            }
        }
        panic!("{key:?} is not a DTMF key")
    }

    /// xorshift64*: deterministic noise and phases.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }

        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn uniform(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }

        fn gauss(&mut self) -> f64 {
            let u = self.uniform().max(1e-300);
            (-2.0 * u.ln()).sqrt() * (TAU * self.uniform()).cos()
        }
    }

    /// One DTMF tone burst.
    #[derive(Debug, Clone, Copy)]
    struct Tone {
        key: char,
        /// Levels of the row and column tones, dBm0.
        row_dbm0: f64,
        col_dbm0: f64,
        /// Relative frequency deviations (0.015 is +1.5 %).
        row_dev: f64,
        col_dev: f64,
        ms: f64,
    }

    impl Tone {
        fn new(key: char) -> Tone {
            Tone {
                key,
                row_dbm0: -10.0,
                col_dbm0: -10.0,
                row_dev: 0.0,
                col_dev: 0.0,
                ms: 100.0,
            }
        }

        fn ms(self, ms: f64) -> Tone {
            Tone { ms, ..self }
        }

        fn levels(self, row_dbm0: f64, col_dbm0: f64) -> Tone {
            Tone {
                row_dbm0,
                col_dbm0,
                ..self
            }
        }

        fn devs(self, row_dev: f64, col_dev: f64) -> Tone {
            Tone {
                row_dev,
                col_dev,
                ..self
            }
        }

        /// Mean power of both tones together, 16-bit units squared.
        fn power(&self) -> f64 {
            (peak(self.row_dbm0).powi(2) + peak(self.col_dbm0).powi(2)) / 2.0
        }
    }

    /// Audio under construction, in 16-bit units before rounding.
    #[derive(Default, Clone)]
    struct Signal(Vec<f64>);

    impl Signal {
        fn zeros(&mut self, n: usize) -> &mut Signal {
            self.0.resize(self.0.len() + n, 0.0);
            self
        }

        fn silence(&mut self, ms: f64) -> &mut Signal {
            self.zeros((ms * 8.0).round() as usize)
        }

        /// Appends a tone with random starting phases.
        fn tone(&mut self, tone: &Tone, rng: &mut Rng) -> &mut Signal {
            let (fr, fc) = key_freqs(tone.key);
            let (fr, fc) = (fr * (1.0 + tone.row_dev), fc * (1.0 + tone.col_dev));
            let (ar, ac) = (peak(tone.row_dbm0), peak(tone.col_dbm0));
            let (pr, pc) = (rng.uniform() * TAU, rng.uniform() * TAU);
            let n = (tone.ms * 8.0).round() as usize;
            for i in 0..n {
                let t = i as f64 / 8000.0;
                self.0
                    .push(ar * (TAU * fr * t + pr).sin() + ac * (TAU * fc * t + pc).sin());
            }
            self
        }

        fn pcm(&mut self, pcm: &[i16]) -> &mut Signal {
            self.0.extend(pcm.iter().map(|&s| f64::from(s)));
            self
        }

        /// Adds white Gaussian noise of this RMS to everything so far.
        fn noise(&mut self, rms: f64, rng: &mut Rng) -> &mut Signal {
            for v in &mut self.0 {
                *v += rms * rng.gauss();
            }
            self
        }

        /// Rounded and clipped to 16 bits.
        fn to_pcm(&self) -> Vec<i16> {
            self.0
                .iter()
                .map(|v| v.round().clamp(-32768.0, 32767.0) as i16)
                .collect()
        }
    }

    fn gain(pcm: &[i16], db: f64) -> Vec<i16> {
        let g = 10f64.powf(db / 20.0);
        pcm.iter()
            .map(|&s| (f64::from(s) * g).round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    }

    fn detect_chunked(pcm: &[i16], chunk: usize) -> String {
        let mut detector = InbandDetector::new(InbandConfig::default());
        pcm.chunks(chunk).flat_map(|c| detector.push(c)).collect()
    }

    /// Detection as a call sees it: one 20 ms packet at a time.
    fn detect(pcm: &[i16]) -> String {
        detect_chunked(pcm, 160)
    }

    /// Every window's verdict.
    fn verdicts(pcm: &[i16], chunk: usize) -> Vec<Verdict> {
        verdicts_with(pcm, chunk, InbandConfig::default()).0
    }

    /// Every window's verdict, and the digits.
    fn verdicts_with(pcm: &[i16], chunk: usize, config: InbandConfig) -> (Vec<Verdict>, String) {
        let mut detector = InbandDetector::new(config);
        let mut seen = Vec::new();
        let mut digits = Vec::new();
        for c in pcm.chunks(chunk) {
            detector.feed(c, |v| seen.push(v), &mut digits);
        }
        (seen, digits.into_iter().collect())
    }

    // ---- G.711 round trips (Sun's reference g711.c) ------------------------

    fn segment(value: i32, ends: &[i32; 8]) -> i32 {
        ends.iter().position(|&e| value <= e).unwrap_or(8) as i32
    }

    fn ulaw_encode(pcm: i16) -> u8 {
        let v = i32::from(pcm) >> 2;
        let (v, mask) = if v < 0 { (-v, 0x7F) } else { (v, 0xFF) };
        let v = v.min(8159) + (0x84 >> 2);
        let seg = segment(v, &[0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]);
        if seg >= 8 {
            return (0x7F ^ mask) as u8;
        }
        (((seg << 4) | ((v >> (seg + 1)) & 0xF)) ^ mask) as u8
    }

    fn ulaw_decode(u: u8) -> i16 {
        let u = !u;
        let t = ((i32::from(u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4);
        (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
    }

    fn alaw_encode(pcm: i16) -> u8 {
        let v = i32::from(pcm) >> 3;
        let (v, mask) = if v >= 0 { (v, 0xD5) } else { (-v - 1, 0x55) };
        let seg = segment(v, &[0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]);
        if seg >= 8 {
            return (0x7F ^ mask) as u8;
        }
        let q = if seg < 2 {
            (v >> 1) & 0xF
        } else {
            (v >> seg) & 0xF
        };
        (((seg << 4) | q) ^ mask) as u8
    }

    fn alaw_decode(a: u8) -> i16 {
        let a = a ^ 0x55;
        let t = i32::from(a & 0x0F) << 4;
        let t = match (a & 0x70) >> 4 {
            0 => t + 8,
            1 => t + 0x108,
            seg => (t + 0x108) << (seg - 1),
        };
        (if a & 0x80 != 0 { t } else { -t }) as i16
    }

    fn ulaw(pcm: &[i16]) -> Vec<i16> {
        pcm.iter().map(|&s| ulaw_decode(ulaw_encode(s))).collect()
    }

    fn alaw(pcm: &[i16]) -> Vec<i16> {
        pcm.iter().map(|&s| alaw_decode(alaw_encode(s))).collect()
    }

    #[test]
    fn local_g711_round_trips_within_half_a_step() {
        for x in (i16::MIN..=i16::MAX).step_by(7) {
            for (law, y) in [("µ", ulaw(&[x])[0]), ("A", alaw(&[x])[0])] {
                let err = (i32::from(x) - i32::from(y)).abs();
                let step = (i32::from(x).abs() / 16).max(16);
                assert!(err <= step, "{law}-law {x} -> {y}");
            }
        }
    }

    // ---- the accept/reject grid --------------------------------------------

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Expect {
        Accept,
        Reject,
        /// Between the limits: detected once or not at all, never wrongly.
        Either,
    }

    struct Condition {
        label: String,
        expect: Expect,
        /// The burst (its key is replaced by each key in turn).
        tone: Tone,
        /// White noise, dB below the two tones' total power.
        snr_db: Option<f64>,
    }

    const GROUPS: [&str; 6] = [
        "level",
        "twist",
        "frequency",
        "duration",
        "noise",
        "combined",
    ];

    fn by_band(value: f64, accept: f64, reject: f64) -> Expect {
        if value <= accept {
            Expect::Accept
        } else if value >= reject {
            Expect::Reject
        } else {
            Expect::Either
        }
    }

    fn conditions(group: &'static str) -> Vec<Condition> {
        let base = Tone::new('0');
        let mut list = Vec::new();
        let mut add = |label: String, expect: Expect, tone: Tone, snr_db: Option<f64>| {
            list.push(Condition {
                label,
                expect,
                tone,
                snr_db,
            })
        };
        match group {
            "level" => {
                for dbm0 in [
                    0.0, -3.0, -10.0, -20.0, -25.0, -28.0, -30.0, -32.0, -35.0, -40.0,
                ] {
                    // 0 dBm0 per tone clips in 16 bits (peaks add to 45 654).
                    let clipped = if dbm0 > -3.0 { ", clipped" } else { "" };
                    add(
                        format!("each tone {dbm0} dBm0{clipped}"),
                        by_band(-dbm0, 25.0, 35.0),
                        base.levels(dbm0, dbm0),
                        None,
                    );
                }
            }
            "twist" => {
                for twist in [
                    10.0, 9.0, 8.0, 6.0, 4.0, 0.0, -4.0, -5.0, -6.0, -7.0, -8.0, -10.0,
                ] {
                    let (row, col) = if twist >= 0.0 {
                        (-6.0, -6.0 - twist)
                    } else {
                        (-6.0 + twist, -6.0)
                    };
                    let expect = if twist >= 0.0 {
                        by_band(twist, 8.0, 10.0)
                    } else {
                        by_band(-twist, 4.0, 8.0)
                    };
                    add(
                        format!("row {row} dBm0, column {col} dBm0 (twist {twist:+} dB)"),
                        expect,
                        base.levels(row, col),
                        None,
                    );
                }
            }
            "frequency" => {
                let devs = [
                    -5.0, -3.5, -3.0, -2.5, -2.0, -1.5, -1.0, 0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5,
                    5.0,
                ];
                for (which, row, col) in [
                    ("row", 1.0, 0.0),
                    ("column", 0.0, 1.0),
                    ("both", 1.0, 1.0),
                    ("opposite", 1.0, -1.0),
                ] {
                    for dev in devs {
                        let label = match which {
                            "opposite" => format!("row {dev:+} %, column {:+} %", 0.0 - dev),
                            "both" => format!("both tones {dev:+} %"),
                            _ => format!("{which} {dev:+} %"),
                        };
                        add(
                            label,
                            by_band(f64::abs(dev), 1.5, 3.5),
                            base.devs(row * dev / 100.0, col * dev / 100.0),
                            None,
                        );
                    }
                }
            }
            "duration" => {
                for ms in [
                    20.0, 25.0, 30.0, 32.0, 34.0, 36.0, 38.0, 40.0, 50.0, 100.0, 1000.0,
                ] {
                    add(
                        format!("{ms} ms"),
                        by_band(-ms, -40.0, -30.0),
                        base.ms(ms),
                        None,
                    );
                }
            }
            "noise" => {
                for snr in [30.0, 20.0, 15.0, 13.0, 12.0, 11.0, 10.0, 6.0] {
                    let expect = if snr >= 15.0 {
                        Expect::Accept
                    } else {
                        Expect::Either
                    };
                    add(
                        format!("-10 dBm0 per tone, SNR {snr} dB"),
                        expect,
                        base,
                        Some(snr),
                    );
                }
                for snr in [20.0, 15.0] {
                    add(
                        format!("-25 dBm0 per tone, SNR {snr} dB"),
                        Expect::Accept,
                        base.levels(-25.0, -25.0),
                        Some(snr),
                    );
                }
            }
            "combined" => {
                use Expect::{Accept, Either, Reject};
                let weak = base.levels(-25.0, -25.0);
                let loud = base.levels(-3.0, -3.0);
                for (label, expect, tone, snr) in [
                    (
                        "-25 dBm0, both +1.5 %, 40 ms",
                        Accept,
                        weak.devs(0.015, 0.015).ms(40.0),
                        None,
                    ),
                    (
                        "-25 dBm0, row -1.5 % column +1.5 %, 40 ms",
                        Accept,
                        weak.devs(-0.015, 0.015).ms(40.0),
                        None,
                    ),
                    (
                        "twist +8 dB (-17/-25 dBm0), +1.5 %, 40 ms",
                        Accept,
                        base.levels(-17.0, -25.0).devs(0.015, 0.015).ms(40.0),
                        None,
                    ),
                    (
                        "twist -4 dB (-25/-21 dBm0), -1.5 %, 40 ms",
                        Accept,
                        base.levels(-25.0, -21.0).devs(-0.015, -0.015).ms(40.0),
                        None,
                    ),
                    (
                        "-10 dBm0, ±1.5 %, 40 ms, SNR 15 dB",
                        Accept,
                        base.devs(0.015, -0.015).ms(40.0),
                        Some(15.0),
                    ),
                    (
                        "twist +6 dB (-3/-9 dBm0), 40 ms, SNR 15 dB",
                        Accept,
                        base.levels(-3.0, -9.0).ms(40.0),
                        Some(15.0),
                    ),
                    (
                        "twist +8 dB (-3/-11 dBm0), 40 ms, SNR 20 dB",
                        Accept,
                        base.levels(-3.0, -11.0).ms(40.0),
                        Some(20.0),
                    ),
                    (
                        "twist +8 dB (-3/-11 dBm0), 40 ms, SNR 15 dB",
                        Either,
                        base.levels(-3.0, -11.0).ms(40.0),
                        Some(15.0),
                    ),
                    (
                        "twist -4 dB (-14/-10 dBm0), -1.5 %, 40 ms, SNR 15 dB",
                        Accept,
                        base.levels(-14.0, -10.0).devs(-0.015, -0.015).ms(40.0),
                        Some(15.0),
                    ),
                    ("-3 dBm0, 30 ms", Reject, loud.ms(30.0), None),
                    (
                        "-3 dBm0, column +3.5 %, SNR 30 dB",
                        Reject,
                        loud.devs(0.0, 0.035),
                        Some(30.0),
                    ),
                    (
                        "-3 dBm0, row -3.5 %, 1 s",
                        Reject,
                        loud.devs(-0.035, 0.0).ms(1000.0),
                        None,
                    ),
                    (
                        "twist +10 dB (-3/-13 dBm0), 1 s",
                        Reject,
                        base.levels(-3.0, -13.0).ms(1000.0),
                        None,
                    ),
                    (
                        "twist -8 dB (-14/-6 dBm0), 1 s",
                        Reject,
                        base.levels(-14.0, -6.0).ms(1000.0),
                        None,
                    ),
                    (
                        "-35 dBm0, 1 s",
                        Reject,
                        base.levels(-35.0, -35.0).ms(1000.0),
                        None,
                    ),
                ] {
                    add(label.to_string(), expect, tone, snr);
                }
            }
            _ => panic!("no group {group}"),
        }
        list
    }

    fn seed(label: &str, key: char, variant: u64) -> u64 {
        label
            .bytes()
            .chain(u32::from(key).to_le_bytes())
            .chain(variant.to_le_bytes())
            .fold(0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            })
    }

    /// One burst after 40 ms of silence (plus 0–33 samples, so that the
    /// burst falls differently on the hop grid), then 100 ms of silence.
    fn run(cond: &Condition, key: char, variant: u64) -> String {
        let mut rng = Rng::new(seed(&cond.label, key, variant));
        let tone = Tone { key, ..cond.tone };
        let mut signal = Signal::default();
        signal
            .zeros(320 + (variant as usize * 13) % HOP)
            .tone(&tone, &mut rng)
            .silence(100.0);
        if let Some(snr) = cond.snr_db {
            signal.noise((tone.power() / 10f64.powf(snr / 10.0)).sqrt(), &mut rng);
        }
        detect(&signal.to_pcm())
    }

    /// (runs detected once, runs with nothing, runs with anything else).
    fn tally(cond: &Condition, variants: u64) -> (usize, usize, Vec<String>) {
        let (mut once, mut none, mut wrong) = (0, 0, Vec::new());
        for key in ALL_KEYS.chars() {
            for variant in 0..variants {
                let got = run(cond, key, variant);
                if got == key.to_string() {
                    once += 1;
                } else if got.is_empty() {
                    none += 1;
                } else {
                    wrong.push(format!("{key} → {got:?}"));
                }
            }
        }
        (once, none, wrong)
    }

    fn check_group(group: &'static str) {
        let mut failures = Vec::new();
        for cond in conditions(group) {
            let (once, none, wrong) = tally(&cond, VARIANTS);
            let ok = wrong.is_empty()
                && match cond.expect {
                    Expect::Accept => none == 0,
                    Expect::Reject => once == 0,
                    Expect::Either => true,
                };
            if !ok {
                failures.push(format!(
                    "{} ({:?}): {once} detected, {none} not, wrong: {wrong:?}",
                    cond.label, cond.expect
                ));
            }
        }
        assert!(failures.is_empty(), "{group}:\n{}", failures.join("\n"));
    }

    #[test]
    fn grid_level() {
        check_group("level");
    }

    #[test]
    fn grid_twist() {
        check_group("twist");
    }

    #[test]
    fn grid_frequency() {
        check_group("frequency");
    }

    #[test]
    fn grid_duration() {
        check_group("duration");
    }

    #[test]
    fn grid_noise() {
        check_group("noise");
    }

    #[test]
    fn grid_combined() {
        check_group("combined");
    }

    #[test]
    fn silence_and_noise_alone_give_nothing() {
        let mut rng = Rng::new(7);
        assert_eq!(detect(&vec![0; 80_000]), "");
        for dbm0 in [-50.0, -30.0, -10.0, 0.0] {
            let mut signal = Signal::default();
            signal
                .silence(10_000.0)
                .noise(peak(dbm0) / 2f64.sqrt(), &mut rng);
            assert_eq!(detect(&signal.to_pcm()), "", "noise at {dbm0} dBm0");
        }
    }

    #[test]
    fn second_harmonics_are_rejected() {
        // Key 5 (770 + 1336 Hz) at −10 dBm0 per tone, plus a second harmonic
        // of one tone: 15 dB down it is refused (the residue test alone would
        // pass it: everything else is 18 dB down), 30 dB down it is not.
        for (hz, harmonic_db, expected) in [
            (1540.0, -15.0, ""),
            (2672.0, -15.0, ""),
            (1540.0, -30.0, "5"),
            (2672.0, -30.0, "5"),
        ] {
            let mut signal = Signal::default();
            signal
                .silence(50.0)
                .tone(&Tone::new('5'), &mut Rng::new(14))
                .silence(50.0);
            let a = peak(-10.0 + harmonic_db);
            for (i, v) in signal.0.iter_mut().enumerate().skip(400).take(800) {
                *v += a * (TAU * hz * i as f64 / 8000.0).sin();
            }
            let pcm = signal.to_pcm();
            assert_eq!(detect(&pcm), expected, "{hz} Hz at {harmonic_db} dB");
            // Without the harmonic test every one of them is a key.
            let unchecked = InbandConfig {
                min_harmonic_rejection_db: 0.0,
                ..InbandConfig::default()
            };
            assert_eq!(verdicts_with(&pcm, 160, unchecked).1, "5");
        }
    }

    #[test]
    fn a_dc_offset_does_not_hide_a_tone() {
        for dc in [-3000.0, 1500.0] {
            let mut rng = Rng::new(13);
            let mut signal = Signal::default();
            signal
                .silence(50.0)
                .tone(&Tone::new('9').levels(-20.0, -22.0).ms(60.0), &mut rng)
                .silence(50.0);
            for v in &mut signal.0 {
                *v += dc;
            }
            assert_eq!(detect(&signal.to_pcm()), "9", "DC {dc}");
        }
    }

    // ---- internals ---------------------------------------------------------

    #[test]
    fn screen_and_exact_test_measure_a_tone_right() {
        // A pure −10 dBm0 tone pair: the window filters give its power and
        // the half-window phases its frequency offset.
        for dev in [-0.02, 0.0, 0.012] {
            let tone = Tone::new('5').devs(dev, dev);
            let mut signal = Signal::default();
            signal.tone(&tone, &mut Rng::new(1));
            let detector = InbandDetector::new(InbandConfig::default());
            let mut x = [0f32; WIN];
            for (x, s) in x.iter_mut().zip(signal.to_pcm()) {
                *x = f32::from(s) / 32768.0;
            }
            let expected = f64::from(DBM0_PEAK).powi(2) / 2.0 * 0.1;
            for k in [1, 5] {
                let nominal = omega(if k < 4 { ROW_HZ[k] } else { COL_HZ[k - 4] });
                let offset = frequency_offset(&x, detector.tables, k) / nominal;
                assert!(
                    (f64::from(offset) - dev).abs() < 0.001,
                    "{k}: {offset} vs {dev}"
                );
                let w = nominal + offset * nominal;
                let z = hann_dft2(&x, &detector.tables.hann, [w, w])[0];
                let hann_sum = detector.tables.hann_sum;
                let power = f64::from(norm(z) * 2.0 / (hann_sum * hann_sum));
                assert!(
                    (power / expected - 1.0).abs() < 0.02,
                    "{k} {dev}: {power} vs {expected}"
                );
            }
        }
        // The screen (hop filters joined into a window).
        let mut signal = Signal::default();
        signal.tone(&Tone::new('5'), &mut Rng::new(2));
        let mut detector = InbandDetector::new(InbandConfig::default());
        let pcm = signal.to_pcm();
        detector.push(&pcm[..WIN]);
        let expected = f64::from(DBM0_PEAK).powi(2) / 2.0 * 0.1;
        let t = detector.tables;
        for k in [1usize, 5] {
            let r = t.rot[k];
            let h = detector.hops;
            let z = add(cmul(add(cmul(h[2][k], r), h[1][k]), r), h[0][k]);
            let power = f64::from(norm(z) * 2.0 / (WIN * WIN) as f32);
            // Rectangular window: the other tone and the image leak ±0.5 dB.
            assert!(
                (power / expected - 1.0).abs() < 0.12,
                "{k}: {power} vs {expected}"
            );
        }
    }

    // ---- key presses and pauses --------------------------------------------

    /// Two bursts of one key with a gap between them.
    fn two_bursts(key: char, tone_ms: f64, gap_ms: f64, variant: u64) -> Vec<i16> {
        let mut rng = Rng::new(seed("two bursts", key, variant));
        let tone = Tone::new(key).ms(tone_ms);
        let mut signal = Signal::default();
        signal
            .zeros(320 + (variant as usize * 13) % HOP)
            .tone(&tone, &mut rng)
            .silence(gap_ms)
            .tone(&tone, &mut rng)
            .silence(100.0);
        signal.to_pcm()
    }

    #[test]
    fn same_key_after_a_40ms_pause_is_two_presses() {
        for key in ALL_KEYS.chars() {
            for variant in 0..4 {
                let got = detect(&two_bursts(key, 40.0, 40.0, variant));
                assert_eq!(got, format!("{key}{key}"), "variant {variant}");
            }
        }
    }

    #[test]
    fn dropouts_up_to_20ms_are_one_press() {
        for key in ALL_KEYS.chars() {
            for variant in 0..4 {
                for gap in [10.0, 20.0] {
                    let got = detect(&two_bursts(key, 60.0, gap, variant));
                    assert_eq!(got, key.to_string(), "{gap} ms, variant {variant}");
                }
            }
        }
    }

    #[test]
    fn a_held_key_is_one_press_and_keys_can_follow_without_a_pause() {
        let mut rng = Rng::new(3);
        let mut signal = Signal::default();
        signal
            .silence(20.0)
            .tone(&Tone::new('7').ms(3000.0), &mut rng)
            .tone(&Tone::new('8').ms(60.0), &mut rng)
            .tone(&Tone::new('7').ms(60.0), &mut rng)
            .silence(50.0);
        assert_eq!(detect(&signal.to_pcm()), "787");
    }

    /// A number dialled at 100 ms tone / 100 ms pause.
    fn dial(number: &str, row_dbm0: f64, col_dbm0: f64, seed: u64) -> Vec<i16> {
        let mut rng = Rng::new(seed);
        let mut signal = Signal::default();
        signal.silence(100.0);
        for key in number.chars() {
            signal
                .tone(&Tone::new(key).levels(row_dbm0, col_dbm0), &mut rng)
                .silence(100.0);
        }
        signal.to_pcm()
    }

    #[test]
    fn a_number_through_ulaw_and_alaw() {
        let number = "913800138000#";
        for (row, col) in [(-4.0, -6.0), (-10.0, -10.0), (-20.0, -24.0), (-25.0, -25.0)] {
            let pcm = dial(number, row, col, 4);
            assert_eq!(detect(&pcm), number, "linear {row}/{col} dBm0");
            assert_eq!(detect(&ulaw(&pcm)), number, "µ-law {row}/{col} dBm0");
            assert_eq!(detect(&alaw(&pcm)), number, "A-law {row}/{col} dBm0");
        }
        let all = dial(ALL_KEYS, -12.0, -14.0, 5);
        assert_eq!(detect(&ulaw(&all)), ALL_KEYS);
        assert_eq!(detect(&alaw(&all)), ALL_KEYS);
    }

    // ---- block boundaries --------------------------------------------------

    #[test]
    fn packets_of_160_samples() {
        let pcm = dial(ALL_KEYS, -10.0, -12.0, 6);
        let mut detector = InbandDetector::new(InbandConfig::default());
        let mut got = String::new();
        let mut packets_with_digits = 0;
        for packet in pcm.chunks(160) {
            let digits = detector.push(packet);
            packets_with_digits += usize::from(!digits.is_empty());
            got.extend(digits);
        }
        assert_eq!(got, ALL_KEYS);
        assert_eq!(packets_with_digits, 16, "one key per packet at most here");
    }

    #[test]
    fn odd_sized_chunks_give_the_same_windows() {
        let pcm = dial("913800138000#", -15.0, -13.0, 8);
        let reference = verdicts(&pcm, 160);
        assert!(reference.iter().any(|v| matches!(v, Verdict::Tone(_))));
        for chunk in [1, 2, 7, 33, 34, 35, 101, 102, 103, 161, 997, pcm.len()] {
            assert_eq!(verdicts(&pcm, chunk), reference, "chunks of {chunk}");
            assert_eq!(detect_chunked(&pcm, chunk), "913800138000#");
        }
        // Chunks of varying size, empty ones included.
        let mut rng = Rng::new(9);
        let mut detector = InbandDetector::new(InbandConfig::default());
        let (mut rest, mut got) = (&pcm[..], String::new());
        while !rest.is_empty() {
            let n = ((rng.next() % 400) as usize).min(rest.len());
            got.extend(detector.push(&rest[..n]));
            rest = &rest[n..];
        }
        assert_eq!(got, "913800138000#");
    }

    // ---- talk-off ----------------------------------------------------------

    /// The speech corpus (tests/data/speech), name and samples.
    fn speech() -> Vec<(String, Vec<i16>)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/speech");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .expect("tests/data/speech")
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "wav"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let mut reader = hound::WavReader::open(&path).expect("WAV file");
                let spec = reader.spec();
                assert_eq!(
                    (spec.sample_rate, spec.channels, spec.bits_per_sample),
                    (8000, 1, 16),
                    "{path:?}"
                );
                let samples = reader
                    .samples::<i16>()
                    .collect::<Result<Vec<_>, _>>()
                    .expect("samples");
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                (name.unwrap_or_default(), samples)
            })
            .collect()
    }

    #[test]
    fn no_digits_in_speech() {
        let files = speech();
        let seconds = files.iter().map(|(_, s)| s.len()).sum::<usize>() as f64 / 8000.0;
        assert!(
            files.len() >= 10 && seconds >= 60.0,
            "{seconds} s of speech"
        );
        for (name, pcm) in &files {
            for (how, audio) in [
                ("as is", pcm.clone()),
                ("-10 dB", gain(pcm, -10.0)),
                ("+6 dB, clipped", gain(pcm, 6.0)),
                ("µ-law", ulaw(pcm)),
                ("A-law", alaw(pcm)),
            ] {
                assert_eq!(detect(&audio), "", "{name} {how}");
            }
        }
    }

    #[test]
    fn no_digits_in_mixed_speech_or_speech_in_noise() {
        let files = speech();
        let mut rng = Rng::new(10);
        for (i, (name, pcm)) in files.iter().enumerate() {
            // Two talkers at once: Mandarin over English and the other way.
            let (other, second) = &files[(i + files.len() / 2) % files.len()];
            let mut mixed = Signal::default();
            mixed.pcm(&gain(pcm, -3.0));
            for (m, &s) in mixed.0.iter_mut().zip(&gain(second, -3.0)) {
                *m += f64::from(s);
            }
            assert_eq!(detect(&mixed.to_pcm()), "", "{name} + {other}");
            // Speech in white noise at −40 and −25 dBm0.
            for dbm0 in [-40.0, -25.0] {
                let mut noisy = Signal::default();
                noisy.pcm(pcm).noise(peak(dbm0) / 2f64.sqrt(), &mut rng);
                assert_eq!(
                    detect(&noisy.to_pcm()),
                    "",
                    "{name} in noise at {dbm0} dBm0"
                );
            }
        }
    }

    #[test]
    fn a_tone_right_after_speech_is_detected() {
        let mut rng = Rng::new(11);
        for (i, (name, pcm)) in speech().iter().enumerate() {
            let key = ALL_KEYS.chars().nth(i % 16).unwrap_or('0');
            for gap_ms in [0.0, 50.0] {
                let mut signal = Signal::default();
                signal
                    .pcm(pcm)
                    .silence(gap_ms)
                    .tone(&Tone::new(key).levels(-8.0, -10.0), &mut rng)
                    .silence(100.0);
                assert_eq!(
                    detect(&signal.to_pcm()),
                    key.to_string(),
                    "{name}, gap {gap_ms} ms"
                );
            }
        }
    }

    // ---- the report in docs/dtmf-inband.md -----------------------------------

    /// Prints the tables of docs/dtmf-inband.md:
    ///
    ///     cargo test --release --lib media::inband::tests::report -- --ignored --nocapture
    #[test]
    #[ignore = "prints the measured tables of docs/dtmf-inband.md"]
    fn report() {
        const RUNS: u64 = 8;
        let mut out = String::new();
        let runs = RUNS as usize * 16;
        for group in GROUPS {
            let _ = writeln!(out, "\n### {group}\n");
            let _ = writeln!(
                out,
                "| condition | required | detected (of {runs}) | wrong or double |"
            );
            let _ = writeln!(out, "|---|---|---|---|");
            for cond in conditions(group) {
                let (once, _, wrong) = tally(&cond, RUNS);
                let required = match cond.expect {
                    Expect::Accept => "accept",
                    Expect::Reject => "reject",
                    Expect::Either => "either",
                };
                let _ = writeln!(
                    out,
                    "| {} | {required} | {once} | {} |",
                    cond.label,
                    wrong.len()
                );
            }
        }
        // Gaps between two 60 ms bursts of one key.
        let _ = writeln!(out, "\n### pauses\n");
        let _ = writeln!(
            out,
            "| gap between two 60 ms bursts | one press | two presses | other |"
        );
        let _ = writeln!(out, "|---|---|---|---|");
        for gap in [
            5.0, 10.0, 15.0, 20.0, 25.0, 28.0, 30.0, 32.0, 35.0, 40.0, 50.0,
        ] {
            let (mut one, mut two, mut other) = (0, 0, 0);
            for key in ALL_KEYS.chars() {
                for variant in 0..RUNS {
                    let got = detect(&two_bursts(key, 60.0, gap, variant));
                    match got.chars().count() {
                        1 if got == key.to_string() => one += 1,
                        2 if got == format!("{key}{key}") => two += 1,
                        _ => other += 1,
                    }
                }
            }
            let _ = writeln!(out, "| {gap} ms | {one} | {two} | {other} |");
        }
        // Talk-off: what the speech corpus does to each stage, with the
        // default limits and with all of them relaxed, down to tones only
        // 6, 3 or 0 dB above the rest.
        let files = speech();
        let relaxed = InbandConfig {
            min_level_dbm0: -40.0,
            max_freq_deviation: 0.05,
            max_normal_twist_db: 12.0,
            max_reverse_twist_db: 10.0,
            min_harmonic_rejection_db: 0.0,
            ..InbandConfig::default()
        };
        let configs = [(6.0, 0.0), (3.0, 0.0), (3.0, 20.0), (0.0, 0.0)].map(
            |(min_snr_db, min_harmonic_rejection_db)| InbandConfig {
                min_snr_db,
                min_harmonic_rejection_db,
                ..relaxed.clone()
            },
        );
        let names = [
            "Quiet",
            "Frequency",
            "Level",
            "Twist",
            "Noise",
            "Harmonic",
            "Tone",
        ];
        let mut columns = Vec::new();
        let mut samples = 0;
        for config in [[InbandConfig::default()].as_slice(), &configs].concat() {
            let (mut counts, mut longest, mut digits) = ([0usize; 7], 0u32, 0);
            samples = 0;
            for (_, pcm) in &files {
                for audio in [
                    pcm.clone(),
                    gain(pcm, -10.0),
                    gain(pcm, 6.0),
                    ulaw(pcm),
                    alaw(pcm),
                ] {
                    samples += audio.len();
                    let (seen, found) = verdicts_with(&audio, 160, config.clone());
                    digits += found.chars().count();
                    let mut run = (None, 0u32);
                    for v in seen {
                        let name = match v {
                            Verdict::Tone(_) => "Tone".to_string(),
                            other => format!("{other:?}"),
                        };
                        if let Some(i) = names.iter().position(|n| *n == name) {
                            counts[i] += 1;
                        }
                        run = match v {
                            Verdict::Tone(k) if run.0 == Some(k) => (Some(k), run.1 + 1),
                            Verdict::Tone(k) => (Some(k), 1),
                            _ => (None, 0),
                        };
                        longest = longest.max(run.1);
                    }
                }
            }
            columns.push((counts, longest, digits));
        }
        let _ = writeln!(
            out,
            "\n### talk-off\n\n{} files × 5 (as is, -10 dB, +6 dB clipped, µ-law, A-law): {:.0} s\n",
            files.len(),
            samples as f64 / 8000.0
        );
        let _ = writeln!(
            out,
            "| windows | default limits | relaxed, SNR 6 dB | relaxed, 3 dB \
             | relaxed, 3 dB, harmonics checked | relaxed, 0 dB |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        type Column = ([usize; 7], u32, usize);
        let row = |label: &str, cell: &dyn Fn(&Column) -> String| {
            let cells: Vec<String> = columns.iter().map(cell).collect();
            format!("| {label} | {} |\n", cells.join(" | "))
        };
        for (i, name) in names.iter().enumerate() {
            out += &row(name, &|c| c.0[i].to_string());
        }
        out += &row("longest run of one key (a press needs 6)", &|c| {
            c.1.to_string()
        });
        out += &row("digits detected", &|c| c.2.to_string());
        // Talk-down: a key pressed while the speech goes on.
        let (energy, count) = files
            .iter()
            .flat_map(|(_, s)| s)
            .fold((0.0, 0), |(e, n), &v| (e + f64::from(v).powi(2), n + 1));
        let speech_dbm0 = 10.0 * (energy / f64::from(count) / (peak(0.0).powi(2) / 2.0)).log10();
        let _ = writeln!(
            out,
            "\n### keys over speech\n\nThe corpus as recorded has a mean power of \
             {speech_dbm0:.1} dBm0 (pauses included).\n\n\
             | speech level | keys detected (-10 dBm0 per tone, 100 ms) | wrong |\n|---|---|---|"
        );
        for speech_db in [-30.0, -20.0, -15.0, -10.0, 0.0] {
            let (mut found, mut wrong, mut tries) = (0, 0, 0);
            for (i, (_, pcm)) in files.iter().enumerate() {
                // One key a second, starting half a second in.
                let mut signal = Signal::default();
                signal.pcm(&gain(pcm, speech_db));
                let mut rng = Rng::new(15 + i as u64);
                let mut expected = String::new();
                for (j, key) in ALL_KEYS.chars().enumerate() {
                    let at = 4000 + j * 8000;
                    if at + 800 > signal.0.len() {
                        break;
                    }
                    let mut burst = Signal::default();
                    burst.tone(&Tone::new(key), &mut rng);
                    for (v, b) in signal.0[at..].iter_mut().zip(&burst.0) {
                        *v += b;
                    }
                    expected.push(key);
                }
                // Keys found in order; anything else is wrong.
                let mut want = expected.chars().peekable();
                for got in detect(&signal.to_pcm()).chars() {
                    while want.next_if(|&k| k != got).is_some() {}
                    if want.next_if_eq(&got).is_some() {
                        found += 1;
                    } else {
                        wrong += 1;
                    }
                }
                tries += expected.len();
            }
            let _ = writeln!(
                out,
                "| {:.1} dBm0 ({speech_db:+} dB) | {found} of {tries} | {wrong} |",
                speech_dbm0 + speech_db
            );
        }
        // Cost per 20 ms packet.
        let _ = writeln!(out, "\n### cost per 160-sample packet\n");
        let mut rng = Rng::new(12);
        let speech_pcm: Vec<i16> = files.iter().flat_map(|(_, s)| s.iter().copied()).collect();
        let mut noise = Signal::default();
        noise
            .silence(60_000.0)
            .noise(peak(-20.0) / 2f64.sqrt(), &mut rng);
        let mut tone = Signal::default();
        tone.tone(&Tone::new('5').ms(60_000.0), &mut rng);
        // Twist 10 dB passes each window's looser limit but not the average:
        // never reported, so every window goes through the whole exact test.
        let mut twisted = Signal::default();
        twisted.tone(&Tone::new('5').levels(-5.0, -15.0).ms(60_000.0), &mut rng);
        for (what, pcm) in [
            ("silence", vec![0i16; 480_000]),
            ("white noise, -20 dBm0", noise.to_pcm()),
            ("speech corpus", speech_pcm),
            ("continuous DTMF tone (held key)", tone.to_pcm()),
            (
                "worst case: every window through the exact test",
                twisted.to_pcm(),
            ),
        ] {
            let mut detector = InbandDetector::new(InbandConfig::default());
            let start = std::time::Instant::now();
            let mut found = 0;
            for packet in pcm.chunks(160) {
                found += std::hint::black_box(detector.push(std::hint::black_box(packet))).len();
            }
            let per_packet = start.elapsed().as_nanos() as f64 / (pcm.len() / 160) as f64;
            let _ = writeln!(
                out,
                "- {what}: {per_packet:.0} ns per packet, {found} key(s) reported"
            );
        }
        println!("{out}");
    }
}
