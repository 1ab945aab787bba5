//! SRTP: the RFC 3711 Appendix B vectors, a reference packet computed
//! independently from the RFC's derived keys, round trips across sequence
//! wraps, replay and tampering, and interoperation with `libsrtp` (an
//! independent pure-Rust implementation, a dev-dependency only).

use super::*;
use aes::cipher::{BlockEncrypt, KeyInit, KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use proptest::prelude::*;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

fn hex(text: &str) -> Vec<u8> {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(clean).expect("hex")
}

/// RFC 3711 B.3's master key and salt (also libsrtp's test key).
fn rfc_master() -> MasterKey {
    let mut bytes = [0u8; 30];
    bytes[..16].copy_from_slice(&hex("E1F97A0D3E018BE0D64FA32C06DE4139"));
    bytes[16..].copy_from_slice(&hex("0EC675AD498AFEEBB6960B3AABE6"));
    MasterKey::from_bytes(bytes)
}

/// The AES-CM PRF of RFC 3711 §4.3.3 with key derivation rate 0.
fn derive(master: &MasterKey, label: u8, len: usize) -> Vec<u8> {
    let mut x = [0u8; 16];
    x[..14].copy_from_slice(master.salt());
    x[7] ^= label;
    keystream(master.key(), x, len)
}

/// AES-CM keystream from the IV `iv` (RFC 3711 §4.1.1).
fn keystream(key: &[u8], iv: [u8; 16], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut cipher = Aes128Ctr::new(key.into(), &iv.into());
    cipher.apply_keystream(&mut out);
    out
}

#[test]
fn rfc3711_b2_aes_cm_keystream() {
    // Session key and salt of B.2; IV = salt·2^16 for SSRC 0, index 0.
    let key = hex("2B7E151628AED2A6ABF7158809CF4F3C");
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(&hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"));
    let stream = keystream(&key, iv, 16 * 3);
    assert_eq!(
        stream,
        hex("E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB 41E95B3BB0A2E8DD477901E4FCA894C0")
    );
    // The same block function by hand: one AES block of the IV.
    let mut block = aes::cipher::generic_array::GenericArray::from(iv);
    aes::Aes128::new(key.as_slice().into()).encrypt_block(&mut block);
    assert_eq!(block.as_slice(), &stream[..16]);
}

#[test]
fn rfc3711_b3_key_derivation() {
    let master = rfc_master();
    assert_eq!(
        derive(&master, 0x00, 16),
        hex("C61E7A93744F39EE10734AFE3FF7A087")
    );
    assert_eq!(
        derive(&master, 0x02, 14),
        hex("30CBBC08863D8C85D49DB34A9AE1")
    );
    assert_eq!(
        derive(&master, 0x01, 20),
        hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
    );
}

/// libsrtp's reference packet (test/srtp_driver.c): SSRC cafebabe,
/// sequence 0x1234, 16 bytes of 0xab.
fn reference_packet() -> Vec<u8> {
    let mut packet = hex("800F1234DECAFBADCAFEBABE");
    packet.extend([0xAB; 16]);
    packet
}

/// The SRTP form of `plain` under the RFC's master key, computed here from
/// the B.3 session keys: AES-CM with IV (salt·2^16) XOR (SSRC·2^64) XOR
/// (index·2^16), then HMAC-SHA1 over the packet and the ROC.
fn independently_protected(plain: &[u8], roc: u32, tag_len: usize) -> Vec<u8> {
    let master = rfc_master();
    let (key, salt, auth) = (
        derive(&master, 0, 16),
        derive(&master, 2, 14),
        derive(&master, 1, 20),
    );
    let ssrc = &plain[8..12];
    let index = (u64::from(roc) << 16) | u64::from(u16::from_be_bytes([plain[2], plain[3]]));
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(&salt);
    for (i, byte) in ssrc.iter().enumerate() {
        iv[4 + i] ^= byte;
    }
    for (i, byte) in index.to_be_bytes()[2..].iter().enumerate() {
        iv[8 + i] ^= byte;
    }
    let mut packet = plain.to_vec();
    let stream = keystream(&key, iv, plain.len() - 12);
    for (byte, k) in packet[12..].iter_mut().zip(stream) {
        *byte ^= k;
    }
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(&auth).expect("any key length");
    mac.update(&packet);
    mac.update(&roc.to_be_bytes());
    packet.extend_from_slice(&mac.finalize().into_bytes()[..tag_len]);
    packet
}

fn keys(suite: CryptoSuite, local: MasterKey, remote: MasterKey) -> SrtpKeys {
    SrtpKeys {
        suite,
        local,
        remote,
    }
}

fn sender(suite: CryptoSuite, key: MasterKey) -> SrtpSession {
    SrtpSession::new(keys(suite, key, MasterKey::generate())).expect("session")
}

fn receiver(suite: CryptoSuite, key: MasterKey) -> SrtpSession {
    SrtpSession::new(keys(suite, MasterKey::generate(), key)).expect("session")
}

fn protect(session: &mut SrtpSession, plain: &[u8]) -> Vec<u8> {
    let mut buffer = plain.to_vec();
    buffer.resize(plain.len() + MAX_TAG_LEN, 0);
    let len = session
        .protect_rtp(&mut buffer, plain.len())
        .expect("protects");
    buffer.truncate(len);
    buffer
}

fn rtp(sequence: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    rtp_rs::RtpPacketBuilder::new()
        .payload_type(0)
        .ssrc(ssrc)
        .sequence(rtp_rs::Seq::from(sequence))
        .timestamp(u32::from(sequence).wrapping_mul(160))
        .payload(payload)
        .build()
        .expect("builds")
}

#[test]
fn the_reference_packet_matches_the_rfc_keys_and_libsrtp() {
    let mut session = sender(CryptoSuite::AesCm128HmacSha1_80, rfc_master());
    let ours = protect(&mut session, &reference_packet());
    assert_eq!(ours, independently_protected(&reference_packet(), 0, 10));
    // libsrtp's published ciphertext for the same packet.
    assert_eq!(
        ours,
        hex("800F1234DECAFBADCAFEBABE 4E55DC4CE79978D88CA4D215949D2402 B78D6ACC99EA179B8DBB")
    );
    let mut short = sender(CryptoSuite::AesCm128HmacSha1_32, rfc_master());
    assert_eq!(
        protect(&mut short, &reference_packet()),
        independently_protected(&reference_packet(), 0, 4)
    );
}

#[test]
fn a_stream_past_two_sequence_wraps_round_trips_with_the_rollover_counter() {
    let key = MasterKey::generate();
    let mut tx = sender(CryptoSuite::AesCm128HmacSha1_80, key);
    let mut rx = receiver(CryptoSuite::AesCm128HmacSha1_80, key);
    let start: u16 = 65_500;
    let count: u32 = 65_536 + 600;
    for n in 0..count {
        let sequence = start.wrapping_add(n as u16);
        let plain = rtp(sequence, 0x1234_5678, &[n as u8; 20]);
        let protected = protect(&mut tx, &plain);
        assert_ne!(protected[12..32], plain[12..], "payload encrypted");
        let opened = rx.unprotect_rtp(&protected).expect("authentic");
        assert_eq!(&opened[..], &plain[..], "packet {n}");
    }
}

#[test]
fn the_rollover_counter_is_in_the_keystream_and_tag() {
    // Packets after one wrap are protected with ROC 1 (RFC 3711 §3.3.1).
    let mut tx = sender(CryptoSuite::AesCm128HmacSha1_80, rfc_master());
    let mut last = Vec::new();
    for n in 0..=65_536u32 + 2 {
        let plain = rtp(n as u16, 0xCAFE_BABE, &[0xAB; 16]);
        last = protect(&mut tx, &plain);
        if n == 65_536 + 2 {
            assert_eq!(last, independently_protected(&plain, 1, 10));
        }
    }
    assert!(!last.is_empty());
}

#[test]
fn replays_and_tampering_are_refused() {
    let key = MasterKey::generate();
    let mut tx = sender(CryptoSuite::AesCm128HmacSha1_80, key);
    let mut rx = receiver(CryptoSuite::AesCm128HmacSha1_80, key);
    let packets: Vec<Vec<u8>> = (0..300u16)
        .map(|n| protect(&mut tx, &rtp(n, 7, &[1; 160])))
        .collect();
    for packet in &packets[..200] {
        rx.unprotect_rtp(packet).expect("authentic");
    }
    assert_eq!(rx.unprotect_rtp(&packets[199]), Err(Refused::Replayed));
    assert_eq!(rx.unprotect_rtp(&packets[150]), Err(Refused::Replayed));
    // Older than the window.
    assert_eq!(rx.unprotect_rtp(&packets[10]), Err(Refused::Replayed));
    // Late but new, inside the window: fine.
    let mut late_rx = receiver(CryptoSuite::AesCm128HmacSha1_80, key);
    late_rx.unprotect_rtp(&packets[5]).expect("first");
    late_rx.unprotect_rtp(&packets[3]).expect("late but new");

    let mut payload_flipped = packets[200].clone();
    payload_flipped[40] ^= 1;
    assert_eq!(
        rx.unprotect_rtp(&payload_flipped),
        Err(Refused::Unauthenticated)
    );
    let mut tag_flipped = packets[200].clone();
    let last = tag_flipped.len() - 1;
    tag_flipped[last] ^= 0x80;
    assert_eq!(
        rx.unprotect_rtp(&tag_flipped),
        Err(Refused::Unauthenticated)
    );
    let mut header_flipped = packets[200].clone();
    header_flipped[1] ^= 0x01;
    assert_eq!(
        rx.unprotect_rtp(&header_flipped),
        Err(Refused::Unauthenticated)
    );
    let wrong_key = receiver(CryptoSuite::AesCm128HmacSha1_80, MasterKey::generate())
        .unprotect_rtp(&packets[200]);
    assert_eq!(wrong_key, Err(Refused::Unauthenticated));
    // A refused forgery does not use up the real packet's index.
    rx.unprotect_rtp(&packets[200])
        .expect("authentic after forgeries");
}

fn libsrtp_config(suite: CryptoSuite, key: &MasterKey) -> libsrtp::StreamConfig {
    let profile = match suite {
        CryptoSuite::AesCm128HmacSha1_80 => libsrtp::ProtectionProfile::Aes128CmHmacSha180,
        CryptoSuite::AesCm128HmacSha1_32 => libsrtp::ProtectionProfile::Aes128CmHmacSha132,
    };
    libsrtp::StreamConfig::new(
        vec![libsrtp::MasterKey::new(key.key(), key.salt(), &None)],
        &profile,
        &libsrtp::ProtectionProfile::Aes128CmHmacSha180,
    )
}

#[test]
fn interoperates_with_libsrtp_both_ways_across_a_wrap() {
    for suite in CryptoSuite::ALL {
        let (ours_key, theirs_key) = (MasterKey::generate(), MasterKey::generate());
        let mut ours = SrtpSession::new(keys(suite, ours_key, theirs_key)).expect("session");
        let mut their_tx = libsrtp::SendSession::new();
        their_tx
            .add_stream(None, &libsrtp_config(suite, &theirs_key))
            .expect("stream");
        let mut their_rx = libsrtp::RecvSession::new();
        their_rx
            .add_stream(None, &libsrtp_config(suite, &ours_key))
            .expect("stream");
        for n in 0..700u16 {
            let sequence = 65_200u16.wrapping_add(n);
            let plain = rtp(sequence, 0xA1B2_C3D4, &[n as u8; 160]);
            let sent = protect(&mut ours, &plain);
            assert_eq!(sent.len(), plain.len() + suite.rtp_tag_len());
            let opened = their_rx.rtp_unprotect(sent).expect("libsrtp accepts ours");
            assert_eq!(opened, plain);
            let theirs = their_tx
                .rtp_protect(plain.clone())
                .expect("libsrtp protects");
            let opened = ours.unprotect_rtp(&theirs).expect("we accept libsrtp's");
            assert_eq!(&opened[..], &plain[..]);
        }
    }
}

/// A receiver report from SSRC `ssrc` with no report blocks.
fn rtcp_receiver_report(ssrc: u32) -> Vec<u8> {
    let mut packet = vec![0x80, 201, 0x00, 0x01];
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet
}

#[test]
fn srtcp_is_authenticated_and_forgeries_refused() {
    let key = MasterKey::generate();
    let mut their_tx = libsrtp::SendSession::new();
    their_tx
        .add_stream(
            None,
            &libsrtp_config(CryptoSuite::AesCm128HmacSha1_80, &key),
        )
        .expect("stream");
    let mut rx = receiver(CryptoSuite::AesCm128HmacSha1_80, key);
    let plain = rtcp_receiver_report(0x0BAD_CAFE);
    let protected = their_tx.rtcp_protect(plain.clone()).expect("protects");
    assert_eq!(
        &rx.unprotect_rtcp(&protected).expect("authentic")[..],
        &plain[..]
    );
    assert_eq!(rx.unprotect_rtcp(&protected), Err(Refused::Replayed));

    let next = their_tx.rtcp_protect(plain.clone()).expect("protects");
    let mut tampered = next.clone();
    tampered[5] ^= 0x40;
    assert_eq!(rx.unprotect_rtcp(&tampered), Err(Refused::Unauthenticated));
    // The E flag cleared: "unencrypted", which we never negotiate, and
    // which the transform would otherwise pass without checking its tag.
    let mut unencrypted = plain.clone();
    unencrypted.extend_from_slice(&[0, 0, 0, 9]);
    unencrypted.extend_from_slice(&[0; SRTCP_TAG_LEN]);
    assert_eq!(
        rx.unprotect_rtcp(&unencrypted),
        Err(Refused::Unauthenticated)
    );
    for len in 0..SRTCP_MIN_LEN {
        assert_eq!(
            rx.unprotect_rtcp(&next[..len.min(next.len())]),
            Err(Refused::Unauthenticated)
        );
    }
    rx.unprotect_rtcp(&next).expect("the real one still passes");
}

#[test]
fn an_update_keeps_our_stream_and_follows_a_new_peer_key() {
    let (ours, first, second) = (
        MasterKey::generate(),
        MasterKey::generate(),
        MasterKey::generate(),
    );
    let suite = CryptoSuite::AesCm128HmacSha1_80;
    let mut session = SrtpSession::new(keys(suite, ours, first)).expect("session");
    let mut peer_rx = receiver(suite, ours);
    let mut peer_tx = sender(suite, second);
    for n in 0..3u16 {
        let sent = protect(&mut session, &rtp(n, 1, &[0; 10]));
        peer_rx.unprotect_rtp(&sent).expect("authentic");
    }
    session.update(keys(suite, ours, second)).expect("updates");
    // Our packets go on in the same context: the peer accepts them.
    let sent = protect(&mut session, &rtp(3, 1, &[0; 10]));
    peer_rx.unprotect_rtp(&sent).expect("still authentic");
    let theirs = protect(&mut peer_tx, &rtp(100, 2, &[5; 10]));
    session.unprotect_rtp(&theirs).expect("new key in use");
}

proptest! {
    #[test]
    fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut session = receiver(CryptoSuite::AesCm128HmacSha1_80, rfc_master());
        let _ = session.unprotect_rtp(&bytes);
        let _ = session.unprotect_rtcp(&bytes);
        let mut short = receiver(CryptoSuite::AesCm128HmacSha1_32, rfc_master());
        let _ = short.unprotect_rtp(&bytes);
        let _ = short.unprotect_rtcp(&bytes);
    }
}

/// The `media_session` fuzz target's crash: a one-byte header extension
/// element that claims more bytes than the packet has made the crate's RTP
/// parser panic (bytes' `advance out of bounds`). It is refused now.
#[test]
fn an_extension_element_past_the_packet_is_refused_not_a_panic() {
    let mut receiving = receiver(CryptoSuite::AesCm128HmacSha1_80, MasterKey::generate());
    // X bit, profile 0xBEDE, a block of one word holding an element of 16
    // bytes (id 1, length field 15), then nothing more.
    let mut packet = vec![0x90, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44];
    packet.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0x1f, 0, 0, 0]);
    assert_eq!(
        receiving.unprotect_rtp(&packet).unwrap_err(),
        Refused::Unauthenticated
    );
    // The same with two-byte elements whose length byte is past the block.
    let mut packet = vec![0x90, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44];
    packet.extend_from_slice(&[0x10, 0x00, 0x00, 0x01, 0, 0, 0, 0x07]);
    assert!(!extension_elements_fit(&packet));
    // Well-formed extensions pass the guard (and then meet the tag check).
    let mut packet = vec![0x90, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44];
    packet.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0x10, 0xaa, 0x00, 0x00]);
    packet.extend_from_slice(&[0u8; 20]);
    assert!(extension_elements_fit(&packet));
}
