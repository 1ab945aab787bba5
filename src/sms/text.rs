//! Folding what people type so that how it was typed doesn't matter:
//! full-width letters, digits and punctuation (U+FF01–U+FF5E) become ASCII,
//! the ideographic space U+3000 and every other Unicode space become ' ',
//! Chinese punctuation that has no ASCII twin (、。【】「」 …) becomes a
//! separator, invisible format characters (zero-width space, BOM, soft
//! hyphen) go, and case is folded. Pure: this module only rewrites text; it
//! knows no commands and no languages beyond telling Chinese characters.
//!
//! Width is folded with Unicode NFKC (the `unicode-normalization` crate)
//! rather than a hand-written U+FF01–U+FF5E offset: NFKC maps exactly that
//! block to ASCII, U+3000 and the U+2000–U+200A spaces to ' ', half-width
//! katakana punctuation to its CJK form, and circled or superscript digits
//! that phones sometimes insert to plain digits, all from Unicode's own
//! tables. Full-width ，：！？；（） become ASCII , : ! ? ; ( ) this way, so
//! callers treat ASCII punctuation as separators where they need to.

use std::ops::Range;
use unicode_normalization::UnicodeNormalization;

/// One character of folded text and the bytes of the original character it
/// came from (one original character may fold to several, e.g. "ﬁ" to "fi").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldedChar {
    pub folded: char,
    pub origin: Range<usize>,
}

/// `text` folded for matching: NFKC, lowercase, separators and spaces as
/// single ' ', no leading or trailing space.
pub fn fold(text: &str) -> String {
    fold_with_origins(text)
        .into_iter()
        .map(|folded_char| folded_char.folded)
        .collect()
}

/// [`fold`], with where each folded character came from, so a caller that
/// matched on the folded text can take the original text after a match.
/// Characters are folded one at a time (NFKC of each), which is what lets
/// every folded character point at one original character.
pub fn fold_with_origins(text: &str) -> Vec<FoldedChar> {
    let mut out: Vec<FoldedChar> = Vec::with_capacity(text.len());
    for (start, original) in text.char_indices() {
        let origin = start..start + original.len_utf8();
        for compatible in std::iter::once(original).nfkc() {
            if is_invisible(compatible) {
                continue;
            }
            if compatible.is_whitespace() || is_chinese_separator(compatible) {
                if out.last().is_some_and(|last| last.folded != ' ') {
                    out.push(FoldedChar {
                        folded: ' ',
                        origin: origin.clone(),
                    });
                }
                continue;
            }
            for folded in compatible.to_lowercase() {
                out.push(FoldedChar {
                    folded,
                    origin: origin.clone(),
                });
            }
        }
    }
    if out.last().is_some_and(|last| last.folded == ' ') {
        out.pop();
    }
    out
}

/// `text` tidied for keeping (a fault description, say): NFKC, every space
/// as a single ' ', invisible format characters dropped, trimmed. Case and
/// punctuation are kept.
pub fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.nfkc() {
        if is_invisible(c) {
            continue;
        }
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Whether `c` is written only in Chinese: a Han character, Bopomofo, or
/// CJK punctuation (U+3001–U+303F). Full-width letters, digits and ASCII
/// punctuation are not: an English message typed in full width is English.
pub fn is_chinese(c: char) -> bool {
    matches!(c,
        '\u{3001}'..='\u{303F}'
        | '\u{3100}'..='\u{312F}'
        | '\u{31A0}'..='\u{31BF}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{323AF}')
}

/// Chinese punctuation that NFKC leaves as it is and that separates words.
fn is_chinese_separator(c: char) -> bool {
    matches!(
        c,
        '、' | '。'
            | '〈'
            | '〉'
            | '《'
            | '》'
            | '「'
            | '」'
            | '『'
            | '』'
            | '【'
            | '】'
            | '〔'
            | '〕'
            | '〖'
            | '〗'
            | '〘'
            | '〙'
            | '〚'
            | '〛'
            | '〜'
            | '〝'
            | '〞'
            | '〟'
            | '・'
            | '·'
            | '—'
            | '―'
            | '‘'
            | '’'
            | '“'
            | '”'
    )
}

/// Characters that take no space and carry no meaning in a message.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_width_ascii_becomes_ascii() {
        assert_eq!(fold("ＳＴＡＴＵＳ　５５５－１２３４"), "status 555-1234");
        let every_full_width: String = ('\u{FF01}'..='\u{FF5E}').collect();
        let every_ascii: String = ('!'..='~').collect();
        assert_eq!(tidy(&every_full_width), every_ascii);
    }

    #[test]
    fn unicode_spaces_become_one_space_and_ends_are_trimmed() {
        assert_eq!(
            fold("\u{3000}a\u{00A0}\u{2003}b\t\r\nc\u{202F}d\u{3000}"),
            "a b c d"
        );
        assert_eq!(tidy(" 路由器\u{3000}\u{3000}坏了 \n"), "路由器 坏了");
    }

    #[test]
    fn chinese_punctuation_separates_words() {
        assert_eq!(fold("查询【555】「1234」、567。"), "查询 555 1234 567");
        assert_eq!(fold("报障：路由器，灯不亮！"), "报障:路由器,灯不亮!");
    }

    #[test]
    fn case_is_folded_for_matching_but_kept_when_tidying() {
        assert_eq!(fold("HeLp"), "help");
        assert_eq!(tidy("Router ＤＯＷＮ"), "Router DOWN");
    }

    #[test]
    fn invisible_characters_are_dropped() {
        assert_eq!(fold("sta\u{200B}tus\u{FEFF}"), "status");
        assert_eq!(tidy("\u{FEFF}fault\u{00AD}"), "fault");
    }

    #[test]
    fn every_folded_character_points_at_its_original() {
        let text = "ａ　ﬁ、b";
        let folded = fold_with_origins(text);
        let pairs: Vec<(char, &str)> = folded
            .iter()
            .map(|folded_char| (folded_char.folded, &text[folded_char.origin.clone()]))
            .collect();
        assert_eq!(
            pairs,
            [
                ('a', "ａ"),
                (' ', "　"),
                ('f', "ﬁ"),
                ('i', "ﬁ"),
                (' ', "、"),
                ('b', "b")
            ]
        );
    }

    #[test]
    fn chinese_characters_are_told_from_full_width_ones() {
        assert!("查询".chars().all(is_chinese));
        assert!(is_chinese('。'));
        assert!(is_chinese('𠀀'));
        assert!(!"ＳＴＡＴＵＳ５，".chars().any(is_chinese));
        assert!(!is_chinese('\u{3000}'));
        assert!(!"status".chars().any(is_chinese));
    }
}
