//! RFC 4733 telephone-event payloads for DTMF: a per-call receiver that turns
//! event packets into key presses, and the packets that send one key press.
//!
//! This module owns the 4-byte event payload (event code, E bit, volume,
//! duration), the rule that decides which packets are one key press, and the
//! shape of an outgoing press. It is pure (sans-IO): it never reads a clock,
//! touches a socket, parses RTP headers or logs. Callers hand in the header
//! fields and the payload of each received packet, and for sending they
//! assign sequence numbers and pace the packets themselves. No input may make
//! it panic.
//!
//! Only the sixteen DTMF events (codes 0–15: `0`–`9`, `*`, `#`, `A`–`D`) are
//! handled; other events (flash hook, fax and modem tones, codes 16 and up)
//! are ignored.
//!
//! # One press per event
//!
//! A sender reports one key press as a run of packets that all carry the
//! event's start timestamp: a first packet with the marker bit, updates with
//! a growing duration, and (usually three) final packets with the E bit. Any
//! of them may be lost, duplicated or reordered, so the receiver reports a
//! press at the *first* packet it sees of an event, whatever its kind, and
//! recognises every later packet of that event by its (SSRC, timestamp,
//! event code). It remembers the last [`HISTORY`] events, so late and
//! duplicate packets of any of them are not reported again. Sequence numbers
//! and the marker bit are not needed for this, which makes the receiver
//! indifferent to sequence-number wrap; timestamps are only compared for
//! equality, so timestamp wrap needs no care either.
//!
//! A key held longer than the 16-bit duration field allows (0xFFFF samples,
//! about 8.2 s at 8 kHz) is sent as segments (RFC 4733 §2.5.1.3): the next
//! segment carries the timestamp where the previous one ended, the old one
//! plus 0xFFFF. A packet of the same digit at exactly that timestamp, while
//! the previous event has not ended, continues the press rather than starting
//! a new one. A sender that instead keeps the original timestamp and lets the
//! duration wrap is covered by the timestamp rule.

/// How many recent events the receiver remembers to drop their late and
/// duplicate packets. Sixteen key presses take at least a second and a half,
/// far longer than any packet is delayed in practice.
pub const HISTORY: usize = 16;

/// The DTMF events in event-code order (RFC 4733 §3.2, Table 7).
const DIGITS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];
/// Length of one event block; redundant blocks after it are ignored.
const BLOCK_LEN: usize = 4;
/// The E (end of event) bit in the second payload byte.
const END_BIT: u8 = 0x80;
/// Volume we send, in −dBm0 (6 bits).
const SEND_VOLUME: u8 = 10;
/// How many times the final packet of a press is sent (RFC 4733 §2.5.1.4).
const END_REPEATS: usize = 3;
/// RTP clock ticks per millisecond of the telephone-event stream (8 kHz).
const SAMPLES_PER_MS: u32 = 8;
/// Longest duration one event (or segment) can report.
const MAX_DURATION: u32 = 0xFFFF;

/// One key press received as telephone events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPress {
    /// `0`–`9`, `*`, `#` or `A`–`D`.
    pub digit: char,
    /// RTP timestamp of the event (its start).
    pub timestamp: u32,
}

/// An event the receiver has already reported (or folded into a press).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SeenEvent {
    ssrc: u32,
    timestamp: u32,
    code: u8,
    /// A packet with the E bit has been seen.
    ended: bool,
}

/// Turns the telephone-event packets of one call into key presses, each
/// exactly once. See the module documentation for the rule.
#[derive(Debug, Clone, Default)]
pub struct EventReceiver {
    /// Ring of the most recent events, the oldest overwritten first.
    seen: [Option<SeenEvent>; HISTORY],
    /// The slot the next new event goes into.
    next: usize,
}

impl EventReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one telephone-event RTP payload with its RTP header fields.
    /// Only the first 4-byte event block is read; redundant blocks after it
    /// are ignored. Returns a press at the first packet seen of a new event,
    /// and `None` for every other packet of it, for payloads shorter than
    /// 4 bytes and for event codes that are not DTMF (16 and up).
    ///
    /// `sequence` and `marker` are taken so that callers can pass the header
    /// as it is; an event is identified without them.
    pub fn on_packet(
        &mut self,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Option<DtmfPress> {
        let _ = (sequence, marker);
        let block = payload.get(..BLOCK_LEN)?;
        let (&code, rest) = block.split_first()?;
        let digit = event_code_to_digit(code)?;
        let ended = rest.first().is_some_and(|flags| flags & END_BIT != 0);

        if let Some(known) = self.find(ssrc, timestamp, code) {
            known.ended |= ended;
            return None;
        }
        let next_segment = self.latest().is_some_and(|previous| {
            previous.ssrc == ssrc
                && previous.code == code
                && !previous.ended
                && timestamp == previous.timestamp.wrapping_add(MAX_DURATION)
        });
        self.remember(SeenEvent {
            ssrc,
            timestamp,
            code,
            ended,
        });
        (!next_segment).then_some(DtmfPress { digit, timestamp })
    }

    /// A remembered event with this identity.
    fn find(&mut self, ssrc: u32, timestamp: u32, code: u8) -> Option<&mut SeenEvent> {
        self.seen
            .iter_mut()
            .flatten()
            .find(|event| event.ssrc == ssrc && event.timestamp == timestamp && event.code == code)
    }

    /// The event remembered most recently.
    fn latest(&self) -> Option<&SeenEvent> {
        self.seen[(self.next + HISTORY - 1) % HISTORY].as_ref()
    }

    fn remember(&mut self, event: SeenEvent) {
        self.seen[self.next] = Some(event);
        self.next = (self.next + 1) % HISTORY;
    }
}

/// The DTMF digit of an event code: 0–9 → `'0'`–`'9'`, 10 → `'*'`,
/// 11 → `'#'`, 12–15 → `'A'`–`'D'`; `None` for codes 16 and up.
pub fn event_code_to_digit(code: u8) -> Option<char> {
    DIGITS.get(usize::from(code)).copied()
}

/// The event code of a DTMF digit (`a`–`d` are accepted as `A`–`D`);
/// `None` for any other character.
pub fn digit_to_event_code(digit: char) -> Option<u8> {
    let digit = digit.to_ascii_uppercase();
    DIGITS
        .iter()
        .position(|&known| known == digit)
        .and_then(|code| u8::try_from(code).ok())
}

/// One telephone-event RTP packet to send: the header fields that differ
/// between packets of a press, and the 4-byte payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPacket {
    pub marker: bool,
    pub timestamp: u32,
    pub payload: [u8; 4],
}

/// The packets of one key press sent as RFC 4733 events, in sending order:
/// one every `ptime_ms`, all with the event's start `timestamp`, durations
/// growing by the samples per packet (8 kHz clock), marker on the first
/// packet only, and the final packet (duration `duration_ms`) sent three
/// times with the E bit (RFC 4733 §2.5.1.4). Volume 10 (−10 dBm0). The
/// caller assigns consecutive sequence numbers and paces the packets.
///
/// `None` for a character that is not a DTMF digit, a zero `duration_ms` or
/// `ptime_ms`, or a duration beyond one event's 0xFFFF samples (8191 ms);
/// longer presses are not sent as segments.
pub fn press_packets(
    digit: char,
    timestamp: u32,
    duration_ms: u32,
    ptime_ms: u32,
) -> Option<Vec<EventPacket>> {
    let code = digit_to_event_code(digit)?;
    let step = ptime_ms
        .checked_mul(SAMPLES_PER_MS)
        .filter(|&step| step > 0)?;
    let total = duration_ms
        .checked_mul(SAMPLES_PER_MS)
        .filter(|&total| total > 0)
        .and_then(|total| u16::try_from(total).ok())?;
    let count = u32::from(total).div_ceil(step);

    let packet = |marker: bool, duration: u16, end: bool| {
        let [high, low] = duration.to_be_bytes();
        let flags = if end {
            END_BIT | SEND_VOLUME
        } else {
            SEND_VOLUME
        };
        EventPacket {
            marker,
            timestamp,
            payload: [code, flags, high, low],
        }
    };
    let mut packets = Vec::with_capacity(count as usize + END_REPEATS - 1);
    for index in 1..count {
        // index * step < total <= 0xFFFF.
        let duration = u16::try_from(index * step).ok()?;
        packets.push(packet(index == 1, duration, false));
    }
    for repeat in 0..END_REPEATS {
        packets.push(packet(count == 1 && repeat == 0, total, true));
    }
    Some(packets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SSRC: u32 = 0x1234_5678;

    fn block(code: u8, end: bool, duration: u16) -> [u8; 4] {
        let [high, low] = duration.to_be_bytes();
        let flags = if end { 0x80 | 10 } else { 10 };
        [code, flags, high, low]
    }

    /// Feeds packets of one SSRC with consecutive sequence numbers from
    /// `first_sequence`, returning every press reported.
    fn feed(
        receiver: &mut EventReceiver,
        first_sequence: u16,
        packets: &[(u32, bool, [u8; 4])],
    ) -> Vec<DtmfPress> {
        let mut sequence = first_sequence;
        let mut presses = Vec::new();
        for (timestamp, marker, payload) in packets {
            presses.extend(receiver.on_packet(SSRC, sequence, *timestamp, *marker, payload));
            sequence = sequence.wrapping_add(1);
        }
        presses
    }

    /// The packets of a complete event: start, `updates` continuations and
    /// three end packets, 160 samples apart.
    fn whole_event(code: u8, timestamp: u32, updates: u16) -> Vec<(u32, bool, [u8; 4])> {
        let mut packets = vec![(timestamp, true, block(code, false, 160))];
        for update in 1..=updates {
            packets.push((timestamp, false, block(code, false, 160 * (update + 1))));
        }
        for _ in 0..3 {
            packets.push((timestamp, false, block(code, true, 160 * (updates + 2))));
        }
        packets
    }

    fn press(digit: char, timestamp: u32) -> DtmfPress {
        DtmfPress { digit, timestamp }
    }

    #[test]
    fn one_press_per_event_from_start_continuation_and_end_packets() {
        let mut receiver = EventReceiver::new();
        let packets = whole_event(5, 8000, 4);
        let first = receiver.on_packet(SSRC, 10, 8000, true, &packets[0].2);
        assert_eq!(first, Some(press('5', 8000)));
        assert!(feed(&mut receiver, 11, &packets[1..]).is_empty());
    }

    #[test]
    fn lost_start_packets_still_report_the_press() {
        let mut receiver = EventReceiver::new();
        let packets = whole_event(1, 8000, 4);
        assert_eq!(feed(&mut receiver, 10, &packets[2..]), [press('1', 8000)]);
    }

    #[test]
    fn only_end_packets_still_report_the_press_once() {
        let mut receiver = EventReceiver::new();
        let packets = whole_event(11, 8000, 4);
        let ends = &packets[packets.len() - 3..];
        assert_eq!(feed(&mut receiver, 10, ends), [press('#', 8000)]);
    }

    #[test]
    fn lost_end_packets_do_not_hide_the_next_press() {
        let mut receiver = EventReceiver::new();
        let mut first = whole_event(2, 8000, 3);
        first.truncate(4);
        let second = whole_event(2, 9600, 3);
        let mut third = whole_event(7, 11200, 3);
        third.truncate(2);
        let fourth = whole_event(8, 12800, 3);
        let presses: Vec<_> = [first, second, third, fourth]
            .iter()
            .flat_map(|packets| feed(&mut receiver, 10, packets))
            .collect();
        assert_eq!(
            presses,
            [
                press('2', 8000),
                press('2', 9600),
                press('7', 11200),
                press('8', 12800)
            ]
        );
    }

    #[test]
    fn duplicated_packets_report_once() {
        let mut receiver = EventReceiver::new();
        let packets: Vec<_> = whole_event(9, 4000, 5)
            .into_iter()
            .flat_map(|packet| [packet, packet, packet])
            .collect();
        assert_eq!(feed(&mut receiver, 10, &packets), [press('9', 4000)]);
    }

    #[test]
    fn held_key_is_one_press_even_when_the_duration_wraps() {
        let mut receiver = EventReceiver::new();
        // Twelve seconds of 20 ms updates on one timestamp: the 16-bit
        // duration wraps past 0xFFFF along the way.
        let packets: Vec<_> = (1..=600u32)
            .map(|update| {
                let duration = (update * 160) as u16;
                (777, update == 1, block(0, false, duration))
            })
            .collect();
        assert_eq!(feed(&mut receiver, 65000, &packets), [press('0', 777)]);
        let end = [(777, false, block(0, true, 0x1234)); 3];
        assert!(feed(&mut receiver, 65000, &end).is_empty());
    }

    #[test]
    fn long_event_sent_as_segments_is_one_press() {
        let mut receiver = EventReceiver::new();
        let start = 0xFFFF_0000u32;
        let mut packets = vec![(start, true, block(3, false, 160))];
        packets.push((start, false, block(3, false, 0xFFFF)));
        let second = start.wrapping_add(0xFFFF);
        let third = second.wrapping_add(0xFFFF);
        packets.push((second, false, block(3, false, 160)));
        packets.push((second, false, block(3, false, 0xFFFF)));
        packets.push((third, false, block(3, false, 160)));
        packets.extend([(third, false, block(3, true, 800)); 3]);
        assert_eq!(feed(&mut receiver, 10, &packets), [press('3', start)]);

        // The next press of the same key is a new press.
        let next = third.wrapping_add(4000);
        assert_eq!(
            feed(&mut receiver, 20, &whole_event(3, next, 2)),
            [press('3', next)]
        );
    }

    #[test]
    fn segment_rule_needs_an_unfinished_event_of_the_same_key() {
        let mut receiver = EventReceiver::new();
        // Ended with the E bit, then the same key exactly 0xFFFF later.
        let packets = whole_event(4, 100, 2);
        assert_eq!(feed(&mut receiver, 10, &packets), [press('4', 100)]);
        let later = 100 + 0xFFFF;
        let again = [(later, false, block(4, false, 320))];
        assert_eq!(feed(&mut receiver, 20, &again), [press('4', later)]);
        // A different key at the segment timestamp of an unfinished event.
        let other = [(later + 0xFFFF, false, block(6, false, 320))];
        assert_eq!(
            feed(&mut receiver, 30, &other),
            [press('6', later + 0xFFFF)]
        );
    }

    #[test]
    fn same_key_twice_is_two_presses() {
        let mut receiver = EventReceiver::new();
        let mut packets = whole_event(1, 8000, 4);
        packets.extend(whole_event(1, 9600, 4));
        assert_eq!(
            feed(&mut receiver, 10, &packets),
            [press('1', 8000), press('1', 9600)]
        );
    }

    #[test]
    fn sequence_number_wrap_is_harmless() {
        let mut receiver = EventReceiver::new();
        let mut packets = whole_event(1, 8000, 4);
        packets.extend(whole_event(2, 9600, 4));
        packets.extend(whole_event(2, 11200, 4));
        // 24 packets starting 5 before the wrap.
        assert_eq!(
            feed(&mut receiver, 65531, &packets),
            [press('1', 8000), press('2', 9600), press('2', 11200)]
        );
    }

    #[test]
    fn timestamp_wrap_is_harmless() {
        let mut receiver = EventReceiver::new();
        let before = u32::MAX - 100;
        let after = before.wrapping_add(1600);
        let mut packets = whole_event(12, before, 2);
        packets.extend(whole_event(13, after, 2));
        // A late duplicate of the event before the wrap.
        packets.push((before, false, block(12, true, 640)));
        let third = after.wrapping_add(1600);
        packets.extend(whole_event(13, third, 2));
        assert_eq!(
            feed(&mut receiver, 10, &packets),
            [press('A', before), press('B', after), press('B', third)]
        );
    }

    #[test]
    fn new_ssrc_starts_fresh() {
        let mut receiver = EventReceiver::new();
        let start = block(5, false, 160);
        assert_eq!(
            receiver.on_packet(1, 10, 8000, true, &start),
            Some(press('5', 8000))
        );
        // Same timestamp, same key, new source: a new press.
        assert_eq!(
            receiver.on_packet(2, 500, 8000, true, &start),
            Some(press('5', 8000))
        );
        assert_eq!(receiver.on_packet(2, 501, 8000, false, &start), None);
        // A late packet of the old source is still recognised.
        assert_eq!(
            receiver.on_packet(1, 11, 8000, false, &block(5, true, 800)),
            None
        );
    }

    #[test]
    fn late_packet_of_a_previous_event_is_not_reported_again() {
        let mut receiver = EventReceiver::new();
        let first = whole_event(7, 8000, 3);
        let second = whole_event(8, 9600, 3);
        assert_eq!(feed(&mut receiver, 10, &first[..2]), [press('7', 8000)]);
        assert_eq!(feed(&mut receiver, 12, &second), [press('8', 9600)]);
        assert!(feed(&mut receiver, 18, &first[2..]).is_empty());
    }

    #[test]
    fn non_dtmf_event_codes_are_ignored() {
        let mut receiver = EventReceiver::new();
        for code in 16..=255u8 {
            assert_eq!(
                receiver.on_packet(SSRC, u16::from(code), 8000, true, &block(code, false, 160)),
                None,
                "event {code}"
            );
        }
        // They leave no trace: a DTMF event at the same timestamp counts.
        assert_eq!(
            feed(&mut receiver, 300, &whole_event(0, 8000, 1)),
            [press('0', 8000)]
        );
    }

    #[test]
    fn short_payloads_are_ignored() {
        let mut receiver = EventReceiver::new();
        let full = block(5, false, 160);
        for len in 0..4 {
            assert_eq!(receiver.on_packet(SSRC, 1, 8000, true, &full[..len]), None);
        }
        assert_eq!(
            receiver.on_packet(SSRC, 2, 8000, true, &full),
            Some(press('5', 8000))
        );
    }

    #[test]
    fn bytes_after_the_first_block_are_ignored() {
        let mut receiver = EventReceiver::new();
        let mut payload = block(10, false, 320).to_vec();
        payload.extend_from_slice(&block(9, true, 800));
        payload.push(0xFF);
        assert_eq!(
            receiver.on_packet(SSRC, 1, 8000, true, &payload),
            Some(press('*', 8000))
        );
    }

    #[test]
    fn remembers_the_last_sixteen_events() {
        let mut receiver = EventReceiver::new();
        let timestamps: Vec<u32> = (0..=HISTORY as u32).map(|n| 1000 + n * 1600).collect();
        for &timestamp in &timestamps {
            let packets = whole_event(1, timestamp, 1);
            assert_eq!(feed(&mut receiver, 10, &packets[..1]).len(), 1);
        }
        // Late packets of the sixteen newest events are recognised…
        for &timestamp in &timestamps[1..] {
            let late = [(timestamp, false, block(1, true, 480))];
            assert!(feed(&mut receiver, 40, &late).is_empty(), "{timestamp}");
        }
        // …the seventeenth newest has been forgotten.
        let oldest = timestamps[0];
        let late = [(oldest, false, block(1, true, 480))];
        assert_eq!(feed(&mut receiver, 50, &late), [press('1', oldest)]);
    }

    #[test]
    fn digit_and_event_code_mapping() {
        let digits = "0123456789*#ABCD";
        for (code, digit) in (0u8..).zip(digits.chars()) {
            assert_eq!(event_code_to_digit(code), Some(digit));
            assert_eq!(digit_to_event_code(digit), Some(code));
        }
        assert_eq!(digit_to_event_code('a'), Some(12));
        assert_eq!(digit_to_event_code('d'), Some(15));
        assert_eq!(event_code_to_digit(16), None);
        assert_eq!(event_code_to_digit(255), None);
        for other in ['E', 'e', ' ', '+', 'ß', '٣'] {
            assert_eq!(digit_to_event_code(other), None, "{other}");
        }
    }

    #[test]
    fn press_packets_layout() {
        let packets = press_packets('5', 4242, 100, 20).expect("valid press");
        let durations = [160u16, 320, 480, 640, 800, 800, 800];
        assert_eq!(packets.len(), durations.len());
        for (index, (packet, duration)) in packets.iter().zip(durations).enumerate() {
            let end = index >= 4;
            assert_eq!(packet.marker, index == 0);
            assert_eq!(packet.timestamp, 4242);
            let [high, low] = duration.to_be_bytes();
            let flags = if end { 0x8A } else { 0x0A };
            assert_eq!(packet.payload, [5, flags, high, low], "packet {index}");
        }
    }

    #[test]
    fn press_packets_partial_last_packet_and_short_press() {
        let packets = press_packets('#', 7, 50, 20).expect("valid press");
        let durations: Vec<u16> = packets
            .iter()
            .map(|p| u16::from_be_bytes([p.payload[2], p.payload[3]]))
            .collect();
        assert_eq!(durations, [160, 320, 400, 400, 400]);

        let short = press_packets('d', 7, 10, 20).expect("valid press");
        assert_eq!(short.len(), 3);
        assert!(short[0].marker);
        assert!(!short[1].marker && !short[2].marker);
        for packet in &short {
            assert_eq!(packet.payload, [15, 0x8A, 0, 80]);
        }
    }

    #[test]
    fn press_packets_rejects_what_it_cannot_send() {
        assert_eq!(press_packets('x', 0, 100, 20), None);
        assert_eq!(press_packets('5', 0, 0, 20), None);
        assert_eq!(press_packets('5', 0, 100, 0), None);
        assert_eq!(press_packets('5', 0, 8192, 20), None);
        assert_eq!(press_packets('5', 0, u32::MAX, 20), None);
        assert_eq!(press_packets('5', 0, 100, u32::MAX), None);
        let longest = press_packets('5', 0, 8191, 20).expect("8191 ms fits");
        let last = longest.last().expect("packets");
        assert_eq!(
            u16::from_be_bytes([last.payload[2], last.payload[3]]),
            65528
        );
        // A packet time longer than the press: one packet, sent three times.
        assert_eq!(press_packets('5', 0, 100, 1000).map(|p| p.len()), Some(3));
    }

    #[test]
    fn round_trip_of_a_phone_number() {
        let number = "913800138000#";
        let mut receiver = EventReceiver::new();
        let mut sequence = 40000u16;
        let mut timestamp = u32::MAX - 8000;
        let mut presses = Vec::new();
        let mut expected = Vec::new();
        for digit in number.chars() {
            let packets = press_packets(digit, timestamp, 120, 20).expect("valid press");
            for packet in packets {
                presses.extend(receiver.on_packet(
                    SSRC,
                    sequence,
                    packet.timestamp,
                    packet.marker,
                    &packet.payload,
                ));
                sequence = sequence.wrapping_add(1);
            }
            expected.push(press(digit, timestamp));
            timestamp = timestamp.wrapping_add(8 * 120 + 8 * 80);
        }
        assert_eq!(presses, expected);
        let digits: String = presses.iter().map(|p| p.digit).collect();
        assert_eq!(digits, number);
    }

    /// A small deterministic shuffle for the interleaving property test.
    fn shuffle<T>(items: &mut [T], seed: u64) {
        let mut state = seed | 1;
        for index in (1..items.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let other = (state % (index as u64 + 1)) as usize;
            items.swap(index, other);
        }
    }

    /// Per press: event code, duration in ms, gap to the next press in
    /// units of 2 samples (so timestamps stay an even distance apart and
    /// never look like the 0xFFFF segment step), and which packets arrive.
    fn press_strategy() -> impl Strategy<Value = (u8, u32, u32, Vec<prop::sample::Index>)> {
        (
            0u8..16,
            1u32..600,
            1u32..20_000,
            prop::collection::vec(any::<prop::sample::Index>(), 1..40),
        )
    }

    proptest! {
        #[test]
        fn loss_duplication_and_reordering_yield_one_press_per_key(
            presses in prop::collection::vec(press_strategy(), 1..24),
            start in any::<u32>(),
            ssrc in any::<u32>(),
            first_sequence in any::<u16>(),
            ptime in prop::sample::select(vec![10u32, 20, 30, 40]),
        ) {
            let mut receiver = EventReceiver::new();
            let mut timestamp = start;
            let mut sequence = first_sequence;
            for (code, duration, gap, arrivals) in presses {
                let digit = event_code_to_digit(code).expect("DTMF code");
                let packets = press_packets(digit, timestamp, duration, ptime).expect("valid press");
                let mut reported = Vec::new();
                for arrival in &arrivals {
                    let packet = &packets[arrival.index(packets.len())];
                    reported.extend(receiver.on_packet(
                        ssrc, sequence, packet.timestamp, packet.marker, &packet.payload,
                    ));
                    sequence = sequence.wrapping_add(1);
                }
                prop_assert_eq!(reported, vec![DtmfPress { digit, timestamp }]);
                timestamp = timestamp.wrapping_add(duration * 8 + gap * 2);
            }
        }

        #[test]
        fn interleaved_packets_of_recent_events_yield_each_press_once(
            presses in prop::collection::vec(press_strategy(), 1..=HISTORY),
            start in any::<u32>(),
            seed in any::<u64>(),
            ptime in prop::sample::select(vec![10u32, 20, 30, 40]),
        ) {
            let mut expected = Vec::new();
            let mut arriving = Vec::new();
            let mut timestamp = start;
            for (code, duration, gap, arrivals) in presses {
                let digit = event_code_to_digit(code).expect("DTMF code");
                let packets = press_packets(digit, timestamp, duration, ptime).expect("valid press");
                arriving.extend(arrivals.iter().map(|arrival| packets[arrival.index(packets.len())].clone()));
                expected.push(DtmfPress { digit, timestamp });
                timestamp = timestamp.wrapping_add(duration * 8 + gap * 2);
            }
            shuffle(&mut arriving, seed);
            let mut receiver = EventReceiver::new();
            let mut reported: Vec<DtmfPress> = (0u16..)
                .zip(&arriving)
                .filter_map(|(sequence, packet)| {
                    receiver.on_packet(SSRC, sequence, packet.timestamp, packet.marker, &packet.payload)
                })
                .collect();
            let key = |press: &DtmfPress| (press.timestamp, press.digit);
            reported.sort_by_key(key);
            expected.sort_by_key(key);
            prop_assert_eq!(reported, expected);
        }
    }
}
