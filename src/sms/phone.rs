//! The SMS channel's one normal form for a sender's phone number, and the
//! other spellings the same number may be on file under. Pure.
//!
//! Providers send `+8613800138000`; the IVR stores a caller ID as the
//! trunk sent it (`13800138000`, `8613800138000`, …); customers are
//! imported as typed. So a mainland mobile (11 digits, 13–19) written with
//! `+86`, `86` or `0086` is reduced to its 11-digit national form, which is
//! what texts record and what SMS-created tickets carry; lookups of a
//! sender's tickets and customer match every spelling of it
//! ([`spellings`]). Other numbers keep their form, separators removed.

use crate::tickets::store::normalize_phone;

/// The normal form of a sender's number: separators removed, and a
/// mainland mobile in its 11-digit national form.
pub fn normalize(raw: &str) -> String {
    let phone = normalize_phone(raw.trim());
    ["+86", "0086", "86"]
        .iter()
        .find_map(|prefix| {
            phone
                .strip_prefix(prefix)
                .filter(|rest| is_mainland_mobile(rest))
        })
        .map_or_else(|| phone.clone(), str::to_string)
}

/// Every spelling of a normalised number that tickets and customers may be
/// stored under: a mainland mobile with and without `+86`, `86`, `0086`;
/// any other number as it is.
pub fn spellings(normal: &str) -> Vec<String> {
    let mut all = vec![normal.to_string()];
    if is_mainland_mobile(normal) {
        all.extend(["+86", "86", "0086"].iter().map(|p| format!("{p}{normal}")));
    }
    all
}

fn is_mainland_mobile(digits: &str) -> bool {
    digits.len() == 11
        && digits.starts_with('1')
        && matches!(digits.as_bytes()[1], b'3'..=b'9')
        && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mainland_mobiles_lose_their_country_code() {
        for raw in [
            "+8613800138000",
            "8613800138000",
            "008613800138000",
            " 138-0013-8000 ",
            "+86 138 0013 8000",
        ] {
            assert_eq!(normalize(raw), "13800138000", "{raw}");
        }
    }

    #[test]
    fn other_numbers_keep_their_form() {
        assert_eq!(normalize("+14155550100"), "+14155550100");
        assert_eq!(normalize("+86 10 1234 5678"), "+861012345678");
        assert_eq!(normalize("8612345"), "8612345");
    }

    #[test]
    fn a_mobile_is_looked_up_under_every_spelling() {
        assert_eq!(
            spellings("13800138000"),
            [
                "13800138000",
                "+8613800138000",
                "8613800138000",
                "008613800138000"
            ]
        );
        assert_eq!(spellings("+14155550100"), ["+14155550100"]);
    }
}
