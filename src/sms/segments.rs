//! SMS length rules: which encoding a text needs, how many parts (segments)
//! it is sent as, and cutting a reply down to a number of parts. Pure: it
//! counts and cuts, and knows nothing of what the text says.
//!
//! - A text written only in the GSM 03.38 default alphabet goes as GSM-7:
//!   160 septets in one message, 153 per part once it needs several (the
//!   rest of each part holds the concatenation header). The extension table
//!   characters `^ { } \ [ ~ ] | €` (and form feed) take two septets, an
//!   escape and the character, and a part never ends between the two.
//! - Anything else goes as UCS-2 (UTF-16 in practice): 70 code units in one
//!   message, 67 per part; a character outside the Basic Multilingual Plane
//!   (most emoji) is a surrogate pair of two units, never split across parts.
//! - An empty text is no message at all: zero segments.

/// The GSM 03.38 default alphabet, in table order (0x1B, the escape to the
/// extension table, is not a character).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
    ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The GSM 03.38 extension table: each costs an escape septet too.
const GSM7_EXTENSION: &str = "\u{000C}^{}\\[~]|€";

/// Septets in a single GSM-7 message.
pub const GSM7_SINGLE: usize = 160;
/// Septets in each part of a concatenated GSM-7 message.
pub const GSM7_PART: usize = 153;
/// UTF-16 code units in a single UCS-2 message.
pub const UCS2_SINGLE: usize = 70;
/// UTF-16 code units in each part of a concatenated UCS-2 message.
pub const UCS2_PART: usize = 67;

/// How a text is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

/// The encoding `text` needs: GSM-7 if every character is in the default
/// alphabet or its extension table, UCS-2 otherwise.
pub fn encoding(text: &str) -> Encoding {
    if text
        .chars()
        .all(|c| is_gsm7_basic(c) || GSM7_EXTENSION.contains(c))
    {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    }
}

/// How many SMS parts `text` is sent as (0 for an empty text).
pub fn segments(text: &str) -> usize {
    let encoding = encoding(text);
    let (single, part) = match encoding {
        Encoding::Gsm7 => (GSM7_SINGLE, GSM7_PART),
        Encoding::Ucs2 => (UCS2_SINGLE, UCS2_PART),
    };
    let costs = text.chars().map(|c| cost(c, encoding));
    if costs.clone().sum::<usize>() <= single {
        return usize::from(!text.is_empty());
    }
    let mut parts = 1;
    let mut used = 0;
    for cost in costs {
        if used + cost > part {
            parts += 1;
            used = 0;
        }
        used += cost;
    }
    parts
}

/// `text` as it is if it fits in `max_segments` parts; otherwise cut at a
/// character boundary (trailing spaces dropped) and ended with "..." when
/// the result is GSM-7 or "…" when it is UCS-2, whichever keeps more of the
/// text, so that it fits. With `max_segments` 0 the result is empty.
pub fn fit(text: &str, max_segments: usize) -> String {
    if segments(text) <= max_segments {
        return text.to_string();
    }
    if max_segments == 0 {
        return String::new();
    }
    // Every character takes at least one septet or unit, so no prefix longer
    // than this can fit, however long the text.
    let longest = max_segments.saturating_mul(GSM7_SINGLE);
    let ends: Vec<usize> = text
        .char_indices()
        .map(|(start, _)| start)
        .take(longest.saturating_add(1))
        .collect();
    let cut_with = |mark: &str| {
        let candidate = |kept: usize| format!("{}{mark}", text[..ends[kept]].trim_end());
        // Every prefix is cut from a text that doesn't fit; the empty prefix
        // with the mark alone always fits in one part.
        let (mut fits, mut too_long) = (0, ends.len());
        while too_long - fits > 1 {
            let middle = fits + (too_long - fits) / 2;
            if segments(&candidate(middle)) <= max_segments {
                fits = middle;
            } else {
                too_long = middle;
            }
        }
        (fits, candidate(fits))
    };
    let (kept_with_dots, with_dots) = cut_with("...");
    let (kept_with_ellipsis, with_ellipsis) = cut_with("…");
    if kept_with_dots >= kept_with_ellipsis && encoding(&with_dots) == Encoding::Gsm7 {
        with_dots
    } else {
        with_ellipsis
    }
}

fn is_gsm7_basic(c: char) -> bool {
    // Letters, digits and the space are most of any text: skip the search.
    c.is_ascii_alphanumeric() || c == ' ' || GSM7_BASIC.contains(c)
}

fn cost(c: char, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Gsm7 if !is_gsm7_basic(c) => 2,
        Encoding::Gsm7 => 1,
        Encoding::Ucs2 => c.len_utf16(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_alphabet_has_its_127_characters() {
        assert_eq!(GSM7_BASIC.chars().count(), 127);
        assert_eq!(GSM7_EXTENSION.chars().count(), 10);
    }

    #[test]
    fn gsm_text_is_gsm7_and_anything_else_is_ucs2() {
        assert_eq!(
            encoding("Ticket 5551234567: fixed @ 10:30, £0 €0 {ok}"),
            Encoding::Gsm7
        );
        assert_eq!(encoding("Ça va? Ñoño ÄÖÜ äöü ß ΔΩ"), Encoding::Gsm7);
        assert_eq!(encoding(""), Encoding::Gsm7);
        for not_gsm in ["`", "á", "ú", "工单", "…", "😀", "ç"] {
            assert_eq!(encoding(not_gsm), Encoding::Ucs2, "{not_gsm}");
        }
    }

    #[test]
    fn gsm7_parts_change_at_160_and_every_153_after() {
        for (length, parts) in [
            (0, 0),
            (1, 1),
            (160, 1),
            (161, 2),
            (306, 2),
            (307, 3),
            (459, 3),
            (460, 4),
        ] {
            assert_eq!(segments(&"a".repeat(length)), parts, "{length}");
        }
    }

    #[test]
    fn extension_characters_take_two_septets() {
        assert_eq!(segments(&"€".repeat(80)), 1);
        assert_eq!(segments(&format!("{}a", "€".repeat(80))), 2);
        // 76 escaped characters fill a part of 153 septets.
        assert_eq!(segments(&"[".repeat(152)), 2);
        assert_eq!(segments(&"[".repeat(153)), 3);
    }

    #[test]
    fn an_escaped_character_is_not_split_across_parts() {
        // 306 septets, but the euro sign would straddle parts one and two.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(segments(&text), 3);
        let text = format!("{}€{}", "a".repeat(151), "a".repeat(153));
        assert_eq!(segments(&text), 2);
    }

    #[test]
    fn ucs2_parts_change_at_70_and_every_67_after() {
        for (length, parts) in [
            (1, 1),
            (70, 1),
            (71, 2),
            (134, 2),
            (135, 3),
            (201, 3),
            (202, 4),
        ] {
            assert_eq!(segments(&"工".repeat(length)), parts, "{length}");
        }
    }

    #[test]
    fn an_emoji_is_two_units_and_not_split_across_parts() {
        assert_eq!(segments(&"😀".repeat(35)), 1);
        assert_eq!(segments(&format!("{}a", "😀".repeat(35))), 2);
        // 33 emoji fill a part of 67 units: the 34th would need 68.
        assert_eq!(segments(&"😀".repeat(66)), 2);
        assert_eq!(segments(&"😀".repeat(67)), 3);
        // 134 units, but the emoji would straddle parts one and two.
        let text = format!("{}😀{}", "工".repeat(66), "工".repeat(66));
        assert_eq!(segments(&text), 3);
    }

    #[test]
    fn a_text_that_fits_is_left_alone() {
        let text = "a".repeat(160);
        assert_eq!(fit(&text, 1), text);
        assert_eq!(fit("", 0), "");
        assert_eq!(fit("工单", 1), "工单");
    }

    #[test]
    fn long_gsm_text_is_cut_with_three_dots() {
        let fitted = fit(&"a".repeat(200), 1);
        assert_eq!(fitted, format!("{}...", "a".repeat(157)));
        assert_eq!(segments(&fitted), 1);
        let fitted = fit(&"a".repeat(400), 2);
        assert_eq!(fitted, format!("{}...", "a".repeat(303)));
    }

    #[test]
    fn long_chinese_text_is_cut_with_an_ellipsis() {
        let fitted = fit(&"工".repeat(100), 1);
        assert_eq!(fitted, format!("{}…", "工".repeat(69)));
        let fitted = fit(&"工".repeat(200), 2);
        assert_eq!(fitted, format!("{}…", "工".repeat(133)));
    }

    #[test]
    fn an_emoji_at_the_cut_goes_whole() {
        let text = format!("{}😀{}", "工".repeat(68), "工".repeat(10));
        assert_eq!(fit(&text, 1), format!("{}…", "工".repeat(68)));
    }

    #[test]
    fn a_cut_that_drops_every_non_gsm_character_ends_with_dots() {
        let text = format!("{}工", "a".repeat(200));
        assert_eq!(fit(&text, 1), format!("{}...", "a".repeat(157)));
    }

    #[test]
    fn trailing_spaces_are_dropped_before_the_mark() {
        let text = format!("{} {}", "a".repeat(156), "b".repeat(50));
        assert_eq!(fit(&text, 1), format!("{}...", "a".repeat(156)));
        assert_eq!(fit("some text", 0), "");
    }
}
