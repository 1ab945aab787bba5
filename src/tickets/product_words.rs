//! Which product category a customer's own words name: "专线断了" is a
//! `bandwidth` fault, "800号码打不进来" a `toll_free` one. The words are the
//! `keywords` of each category in `sla.toml` (one table, next to the
//! categories' clocks), read and checked by [`crate::tickets::sla`]; this
//! module only matches them. Pure.
//!
//! Matching rules:
//! - Text and words are folded first ([`crate::sms::text::fold`]): width,
//!   case, Unicode spaces and Chinese punctuation don't matter.
//! - A word that begins (ends) with an ASCII letter or digit counts only
//!   where no ASCII letter or digit comes right before (after) it:
//!   "800" names the product in "800号码" and "call 800 line", but not in
//!   "18001234567" or "8001"; "LAN" is not found in "plan". Chinese words
//!   count anywhere, as Chinese has no spaces.
//! - The word that starts first in the text wins; at the same start, the
//!   longer word ("无线宽带" over "宽带"). No word found: no category (the
//!   caller uses the policy's default).

use crate::sms::text::fold;

/// The product words of every category, folded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductWords {
    /// (folded word, category code), longest word first.
    words: Vec<(Vec<char>, String)>,
}

impl ProductWords {
    /// `words` as (word as written, category code); each word is folded.
    /// The caller has checked that no folded word is empty or repeated.
    pub fn new(words: impl IntoIterator<Item = (String, String)>) -> ProductWords {
        let mut words: Vec<(Vec<char>, String)> = words
            .into_iter()
            .map(|(word, category)| (fold(&word).chars().collect(), category))
            .collect();
        words.sort_by_key(|(word, _)| std::cmp::Reverse(word.len()));
        ProductWords { words }
    }

    /// The category the first product word in `text` names, if any.
    pub fn category_in(&self, text: &str) -> Option<&str> {
        let text: Vec<char> = fold(text).chars().collect();
        let mut best: Option<(usize, usize, &str)> = None;
        for (word, category) in &self.words {
            let Some(start) = find_word(&text, word) else {
                continue;
            };
            // Longest first: an equal start keeps the longer word found earlier.
            if best.is_none_or(|(best_start, _, _)| start < best_start) {
                best = Some((start, word.len(), category));
            }
        }
        best.map(|(_, _, category)| category)
    }

    /// Whether no category has a word.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

/// Where `word` first occurs in `text` as a product word (see the module
/// rules on ASCII boundaries).
fn find_word(text: &[char], word: &[char]) -> Option<usize> {
    let (first, last) = (word.first()?, word.last()?);
    if word.len() > text.len() {
        return None;
    }
    (0..=text.len() - word.len()).find(|&start| {
        let end = start + word.len();
        text[start..end] == *word
            && !(is_ascii_word_char(*first) && start > 0 && is_ascii_word_char(text[start - 1]))
            && !(is_ascii_word_char(*last) && text.get(end).is_some_and(|&c| is_ascii_word_char(c)))
    })
}

fn is_ascii_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// A product word folded as it is matched: what two words are compared by
/// when the policy checks for repeats.
pub fn folded(word: &str) -> String {
    fold(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words() -> ProductWords {
        ProductWords::new(
            [
                ("宽带", "bandwidth"),
                ("专线", "bandwidth"),
                ("leased line", "bandwidth"),
                ("LAN", "bandwidth"),
                ("无线宽带", "ict"),
                ("800", "toll_free"),
                ("4008", "toll_free"),
                ("虚拟网", "virtual_network"),
                ("物流E通", "industry_app"),
            ]
            .map(|(word, category)| (word.to_string(), category.to_string())),
        )
    }

    #[test]
    fn a_product_word_names_its_category() {
        let words = words();
        for (text, category) in [
            ("专线中断", Some("bandwidth")),
            ("宽带断了，灯一直闪", Some("bandwidth")),
            ("800号码打不进来", Some("toll_free")),
            ("our 800 number rings out", Some("toll_free")),
            ("4008热线无法接通", Some("toll_free")),
            ("虚拟网短号拨不通", Some("virtual_network")),
            ("The Leased  Line drops every evening", Some("bandwidth")),
            ("ＬＥＡＳＥＤ　ＬＩＮＥ down", Some("bandwidth")),
            ("物流e通登录不了", Some("industry_app")),
            ("the office LAN is down", Some("bandwidth")),
            ("no dial tone", None),
            ("", None),
        ] {
            assert_eq!(words.category_in(text), category, "{text}");
        }
    }

    #[test]
    fn ascii_words_need_a_boundary_and_chinese_ones_do_not() {
        let words = words();
        assert_eq!(words.category_in("call 18001234567 back"), None);
        assert_eq!(words.category_in("line 8001 dead"), None);
        assert_eq!(words.category_in("my plan expired"), None);
        assert_eq!(words.category_in("800。线路"), Some("toll_free"));
        assert_eq!(words.category_in("号码800打不通"), Some("toll_free"));
    }

    #[test]
    fn the_first_word_wins_and_then_the_longest() {
        let words = words();
        assert_eq!(words.category_in("无线宽带没信号"), Some("ict"));
        assert_eq!(words.category_in("宽带和800都断了"), Some("bandwidth"));
        assert_eq!(words.category_in("800和宽带都断了"), Some("toll_free"));
    }

    #[test]
    fn no_words_match_nothing() {
        let none = ProductWords::default();
        assert!(none.is_empty());
        assert_eq!(none.category_in("专线中断"), None);
    }
}
