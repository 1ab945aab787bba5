//! ITU-T G.711 companding: µ-law (PCMU) and A-law (PCMA) to and from 16-bit
//! linear PCM.
//!
//! This module owns the sample conversions and nothing else. It is pure
//! (sans-IO): no sockets, clocks, files, logging or global state; the only
//! allocation is growing the caller's output buffer. No input can make it
//! panic.
//!
//! Scaling follows the common 16-bit convention of Sun's reference `g711.c`
//! (also used by Wireshark, SoX and most VoIP stacks): µ-law's 14-bit linear
//! range is scaled by 4 (`0x00` → −32124, `0x80` → +32124, `0xFF` and `0x7F`
//! → 0) and A-law's 13-bit range by 8 (`0xD5` → +8, `0x55` → −8, `0xAA` →
//! +32256, `0x2A` → −32256).
//!
//! Decoding is one lookup in a 256-entry table built at compile time, because
//! it runs per packet on the in-band DTMF detector path. Encoding is a few bit
//! operations on the magnitude; its decision levels are those of the G.711
//! tables (µ-law is a mid-tread quantiser, so −1 encodes to the negative zero
//! `0x7F`; A-law is mid-riser, so a negative sample `x` mirrors `-x - 1`).

use crate::sip::sdp::Codec;

/// µ-law bias (33 in the 14-bit domain, scaled by 4): it shifts every
/// magnitude so that segment boundaries fall on powers of two.
const ULAW_BIAS: i32 = 0x84;
/// Largest µ-law magnitude that still fits segment 7 after the bias is added;
/// larger magnitudes saturate to the top code.
const ULAW_CLIP: i32 = 0x7FFF - ULAW_BIAS;
/// A-law transmits every other bit inverted (G.711 §3.2 "even bit inversion").
const ALAW_INVERT: u8 = 0x55;
/// Sign bit of a (de-inverted) code: set for positive samples.
const SIGN: u8 = 0x80;

/// µ-law code byte → linear sample.
static ULAW_TO_LINEAR: [i16; 256] = build_table(Law::Ulaw);
/// A-law code byte → linear sample.
static ALAW_TO_LINEAR: [i16; 256] = build_table(Law::Alaw);

#[derive(Clone, Copy)]
enum Law {
    Ulaw,
    Alaw,
}

const fn build_table(law: Law) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0usize;
    while code < 256 {
        table[code] = match law {
            Law::Ulaw => ulaw_expand(code as u8),
            Law::Alaw => alaw_expand(code as u8),
        };
        code += 1;
    }
    table
}

/// The µ-law decoder of G.711 in closed form: `((2q + 33) << s) - 33` in
/// the 14-bit domain, for segment `s` and step `q` of the inverted code.
const fn ulaw_expand(code: u8) -> i16 {
    let code = !code;
    let segment = (code >> 4) & 0x07;
    let step = (code & 0x0F) as i32;
    let magnitude = (((step << 3) + ULAW_BIAS) << segment) - ULAW_BIAS;
    if code & SIGN != 0 {
        (-magnitude) as i16
    } else {
        magnitude as i16
    }
}

/// The A-law decoder of G.711 in closed form: `2q + 1` in segment 0 and
/// `(2q + 33) << (s - 1)` above it, in the 13-bit domain.
const fn alaw_expand(code: u8) -> i16 {
    let code = code ^ ALAW_INVERT;
    let segment = (code >> 4) & 0x07;
    let step = (code & 0x0F) as i32;
    let magnitude = if segment == 0 {
        (step << 4) + 8
    } else {
        ((step << 4) + 0x108) << (segment - 1)
    };
    if code & SIGN != 0 {
        magnitude as i16
    } else {
        (-magnitude) as i16
    }
}

/// Encodes one linear sample as µ-law. Magnitudes beyond the µ-law range
/// (above 32635) saturate to the loudest code.
pub fn ulaw_encode(sample: i16) -> u8 {
    let sample = i32::from(sample);
    let (magnitude, mask) = if sample < 0 {
        (-sample, 0x7F)
    } else {
        (sample, 0xFF)
    };
    // 132..=32767: the leading one is bit 7 (segment 0) to bit 14 (segment 7).
    let biased = magnitude.min(ULAW_CLIP) + ULAW_BIAS;
    let segment = 31 - biased.leading_zeros() - 7;
    let step = (biased >> (segment + 3)) & 0x0F;
    // segment <= 7 and step <= 15, so the code fits in seven bits.
    ((segment << 4) as u8 | step as u8) ^ mask
}

/// Decodes one µ-law code byte (a table lookup).
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_TO_LINEAR[usize::from(code)]
}

/// Encodes one linear sample as A-law. The whole `i16` range is inside the
/// A-law range, so nothing saturates.
pub fn alaw_encode(sample: i16) -> u8 {
    // A-law has no zero level: `x` and `-x - 1` (its ones' complement) lie
    // symmetrically about −½ and get mirror-image codes.
    let (magnitude, mask) = if sample >= 0 {
        (sample.unsigned_abs(), SIGN ^ ALAW_INVERT)
    } else {
        ((!sample).unsigned_abs(), ALAW_INVERT)
    };
    let magnitude = magnitude >> 3; // 13-bit domain: 0..=4095
    let code = if magnitude < 32 {
        magnitude >> 1
    } else {
        // 32..=4095: the leading one is bit 5 (segment 1) to bit 11 (segment 7).
        let segment = 15 - magnitude.leading_zeros() - 4;
        ((segment as u16) << 4) | ((magnitude >> segment) & 0x0F)
    };
    // code <= 0x7F.
    (code as u8) ^ mask
}

/// Decodes one A-law code byte (a table lookup).
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_TO_LINEAR[usize::from(code)]
}

/// Encodes 16-bit linear PCM into `out` (cleared first) for the codec, one
/// byte per sample.
pub fn encode(codec: Codec, pcm: &[i16], out: &mut Vec<u8>) {
    let encode_one: fn(i16) -> u8 = match codec {
        Codec::Pcmu => ulaw_encode,
        Codec::Pcma => alaw_encode,
    };
    out.clear();
    out.extend(pcm.iter().map(|&sample| encode_one(sample)));
}

/// Decodes a G.711 payload into `out` (cleared first) as 16-bit linear PCM,
/// one sample per byte.
pub fn decode(codec: Codec, payload: &[u8], out: &mut Vec<i16>) {
    out.clear();
    decode_append(codec, payload, out);
}

/// Decodes `payload` onto the end of `out`.
pub fn decode_append(codec: Codec, payload: &[u8], out: &mut Vec<i16>) {
    let table = match codec {
        Codec::Pcmu => &ULAW_TO_LINEAR,
        Codec::Pcma => &ALAW_TO_LINEAR,
    };
    out.extend(payload.iter().map(|&code| table[usize::from(code)]));
}

/// The code byte for silence: `0xFF` (µ-law zero) or `0xD5` (A-law +8, the
/// level closest to zero; what `alaw_encode(0)` gives).
pub fn silence(codec: Codec) -> u8 {
    match codec {
        Codec::Pcmu => 0xFF,
        Codec::Pcma => 0xD5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// G.711 Table 2 (µ-law), in the 14-bit domain: per segment, the decoder
    /// output of step 0 and the step size. Written from the standard's table,
    /// independently of the closed form in `ulaw_expand`.
    const ULAW_SEGMENTS: [(i32, i32); 8] = [
        (0, 2),
        (33, 4),
        (99, 8),
        (231, 16),
        (495, 32),
        (1023, 64),
        (2079, 128),
        (4191, 256),
    ];

    /// G.711 Table 1 (A-law), in the 13-bit domain, as above.
    const ALAW_SEGMENTS: [(i32, i32); 8] = [
        (1, 2),
        (33, 2),
        (66, 4),
        (132, 8),
        (264, 16),
        (528, 32),
        (1056, 64),
        (2112, 128),
    ];

    /// FNV-1a (64-bit) over the 256 decoded values as little-endian `i16`.
    fn fingerprint(decode: fn(u8) -> i16) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for code in 0..=255u8 {
            for byte in decode(code).to_le_bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        hash
    }

    fn ulaw_segment(code: u8) -> u32 {
        u32::from((!code >> 4) & 0x07)
    }

    fn alaw_segment(code: u8) -> u32 {
        u32::from(((code ^ ALAW_INVERT) >> 4) & 0x07)
    }

    #[test]
    fn ulaw_decode_matches_the_g711_table_for_every_code() {
        for code in 0..=255u8 {
            // Transmitted inverted; after inversion bit 7 set means negative.
            let bits = !code;
            let (first, step) = ULAW_SEGMENTS[usize::from((bits >> 4) & 0x07)];
            let magnitude = (first + step * i32::from(bits & 0x0F)) * 4;
            let expected = if bits & 0x80 != 0 {
                -magnitude
            } else {
                magnitude
            };
            assert_eq!(i32::from(ulaw_decode(code)), expected, "code {code:#04x}");
        }
    }

    #[test]
    fn alaw_decode_matches_the_g711_table_for_every_code() {
        for code in 0..=255u8 {
            // Even bits inverted; after that bit 7 set means positive.
            let bits = code ^ 0x55;
            let (first, step) = ALAW_SEGMENTS[usize::from((bits >> 4) & 0x07)];
            let magnitude = (first + step * i32::from(bits & 0x0F)) * 8;
            let expected = if bits & 0x80 != 0 {
                magnitude
            } else {
                -magnitude
            };
            assert_eq!(i32::from(alaw_decode(code)), expected, "code {code:#04x}");
        }
    }

    /// Fingerprints of the published 256-entry decode tables of the Sun
    /// reference (as shipped in Wireshark's `G711utable.h`/`G711atable.h`),
    /// computed from those tables, so every code is checked against an
    /// independent source without copying the tables here.
    #[test]
    fn decode_tables_match_the_reference_tables() {
        assert_eq!(fingerprint(ulaw_decode), 0xb91e_65d6_8481_a1a8);
        assert_eq!(fingerprint(alaw_decode), 0x693a_40ca_62a3_d2a5);
    }

    #[test]
    fn decode_spot_values_from_the_reference() {
        let ulaw = [
            (0x00, -32124),
            (0x0F, -16764),
            (0x10, -15996),
            (0x70, -120),
            (0x7E, -8),
            (0x7F, 0),
            (0x80, 32124),
            (0x8F, 16764),
            (0xF0, 120),
            (0xFE, 8),
            (0xFF, 0),
        ];
        for (code, value) in ulaw {
            assert_eq!(ulaw_decode(code), value, "µ-law {code:#04x}");
        }
        let alaw = [
            (0x00, -5504),
            (0x2A, -32256),
            (0x55, -8),
            (0x7F, -848),
            (0x80, 5504),
            (0xAA, 32256),
            (0xD5, 8),
            (0xFF, 848),
        ];
        for (code, value) in alaw {
            assert_eq!(alaw_decode(code), value, "A-law {code:#04x}");
        }
    }

    #[test]
    fn ulaw_reencodes_every_code_except_negative_zero() {
        for code in 0..=255u8 {
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(ulaw_encode(ulaw_decode(code)), expected, "code {code:#04x}");
        }
    }

    #[test]
    fn alaw_reencodes_every_code() {
        for code in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(code)), code, "code {code:#04x}");
        }
    }

    #[test]
    fn ulaw_encoding_is_monotonic_and_within_half_a_step() {
        let mut previous = i32::MIN;
        for sample in i16::MIN..=i16::MAX {
            let code = ulaw_encode(sample);
            let decoded = i32::from(ulaw_decode(code));
            assert!(decoded >= previous, "not monotonic at {sample}");
            previous = decoded;
            let error = (decoded - i32::from(sample)).abs();
            if i32::from(sample).abs() <= ULAW_CLIP {
                let half_step = 4 << ulaw_segment(code);
                assert!(error <= half_step, "{sample} → {decoded}");
            } else {
                assert_eq!(decoded.abs(), 32124, "{sample} saturates");
            }
        }
    }

    #[test]
    fn alaw_encoding_is_monotonic_and_within_half_a_step() {
        let mut previous = i32::MIN;
        for sample in i16::MIN..=i16::MAX {
            let code = alaw_encode(sample);
            let decoded = i32::from(alaw_decode(code));
            assert!(decoded >= previous, "not monotonic at {sample}");
            previous = decoded;
            let segment = alaw_segment(code);
            let half_step = if segment <= 1 { 8 } else { 8 << (segment - 1) };
            let error = (decoded - i32::from(sample)).abs();
            assert!(error <= half_step, "{sample} → {decoded}");
        }
    }

    #[test]
    fn ulaw_zero_and_extremes() {
        assert_eq!(ulaw_encode(0), 0xFF);
        // Mid-tread: small negatives are the negative zero, as in Sun's
        // original g711.c and ITU-T G.191.
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(ulaw_encode(-3), 0x7F);
        assert_eq!(ulaw_encode(3), 0xFF);
        assert_eq!(ulaw_encode(4), 0xFE);
        assert_eq!(ulaw_encode(-4), 0x7E);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
    }

    #[test]
    fn alaw_zero_and_extremes() {
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(15), 0xD5);
        assert_eq!(alaw_encode(16), 0xD4);
        assert_eq!(alaw_encode(-16), 0x55);
        assert_eq!(alaw_encode(-17), 0x54);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    /// The G.711 decision values between segments, scaled to 16 bits: the
    /// last magnitude of segment `s` is `end - 1`, the first of `s + 1` is
    /// `end`.
    #[test]
    fn segment_boundaries_follow_the_standard() {
        // µ-law: 14-bit decision values 31, 95, 223, 479, 991, 2015, 4063, ×4.
        let ulaw_ends = [124, 380, 892, 1916, 3964, 8060, 16252];
        for (segment, &end) in (0u32..).zip(ulaw_ends.iter()) {
            assert_eq!(ulaw_segment(ulaw_encode(end - 1)), segment);
            assert_eq!(ulaw_segment(ulaw_encode(end)), segment + 1);
            assert_eq!(ulaw_segment(ulaw_encode(1 - end)), segment);
            assert_eq!(ulaw_segment(ulaw_encode(-end)), segment + 1);
        }
        // A-law: 13-bit decision values 32, 64, …, 2048, ×8.
        let alaw_ends = [256, 512, 1024, 2048, 4096, 8192, 16384];
        for (segment, &end) in (0u32..).zip(alaw_ends.iter()) {
            assert_eq!(alaw_segment(alaw_encode(end - 1)), segment);
            assert_eq!(alaw_segment(alaw_encode(end)), segment + 1);
            assert_eq!(alaw_segment(alaw_encode(-end)), segment);
            assert_eq!(alaw_segment(alaw_encode(-end - 1)), segment + 1);
        }
    }

    #[test]
    fn buffer_functions_clear_and_convert() {
        let pcm = [0, -1, 1000, -1000, i16::MAX, i16::MIN];
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut bytes = vec![1, 2, 3, 4, 5, 6, 7, 8];
            encode(codec, &pcm, &mut bytes);
            assert_eq!(bytes.len(), pcm.len());
            let mut samples = vec![9; 20];
            decode(codec, &bytes, &mut samples);
            assert_eq!(samples.len(), bytes.len());
            for ((&sample, &code), &decoded) in pcm.iter().zip(&bytes).zip(&samples) {
                let (one_code, one_sample) = match codec {
                    Codec::Pcmu => (ulaw_encode(sample), ulaw_decode(code)),
                    Codec::Pcma => (alaw_encode(sample), alaw_decode(code)),
                };
                assert_eq!(code, one_code);
                assert_eq!(decoded, one_sample);
            }
            encode(codec, &[], &mut bytes);
            assert!(bytes.is_empty());
            decode(codec, &[], &mut samples);
            assert!(samples.is_empty());
        }
    }

    #[test]
    fn silence_is_the_code_closest_to_zero() {
        assert_eq!(silence(Codec::Pcmu), 0xFF);
        assert_eq!(silence(Codec::Pcma), 0xD5);
        assert_eq!(silence(Codec::Pcmu), ulaw_encode(0));
        assert_eq!(silence(Codec::Pcma), alaw_encode(0));
        assert_eq!(ulaw_decode(silence(Codec::Pcmu)), 0);
        assert_eq!(alaw_decode(silence(Codec::Pcma)), 8);
    }
}
