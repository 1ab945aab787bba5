//! Mandarin phrases for an English acoustic model: each character becomes
//! its pinyin syllable (the `pinyin` crate's tables, tone dropped: a
//! grammar of a few phrases does not need tones to tell them apart), and
//! each syllable the nearest ARPAbet phones of the CMU dictionary the
//! model was trained with. Approximate by nature (Mandarin has sounds
//! English lacks), which is why phrases should differ by more than one
//! sound; the accuracy this gives is measured in docs/benchmarks.md.

use pinyin::ToPinyin;

/// The syllables of `phrase` (characters without a reading, such as
/// punctuation and spaces, are skipped); `None` when it has no Chinese.
pub fn syllables(phrase: &str) -> Option<Vec<String>> {
    let syllables: Vec<String> = phrase
        .to_pinyin()
        .flatten()
        .map(|p| p.plain().to_string())
        .collect();
    (!syllables.is_empty()).then_some(syllables)
}

/// Whether `text` holds a Chinese character.
pub fn has_chinese(text: &str) -> bool {
    text.to_pinyin().flatten().next().is_some()
}

/// The ARPAbet phones of one toneless pinyin syllable (`zhang`, `lv`,
/// `yue`); `None` for something that is not a syllable.
pub fn phones(syllable: &str) -> Option<Vec<&'static str>> {
    let syllable = syllable.replace('ü', "v");
    let (initial, rest) = split_initial(&syllable);
    let mut phones: Vec<&'static str> = initial_phones(initial).to_vec();
    let final_phones = final_phones(initial, rest)?;
    phones.extend_from_slice(final_phones);
    Some(phones)
}

const INITIALS: [&str; 23] = [
    "zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r",
    "z", "c", "s", "y", "w",
];

fn split_initial(syllable: &str) -> (&str, &str) {
    INITIALS
        .iter()
        .find(|initial| syllable.starts_with(*initial) && syllable.len() > initial.len())
        .map_or(("", syllable), |initial| syllable.split_at(initial.len()))
}

fn initial_phones(initial: &str) -> &'static [&'static str] {
    match initial {
        "b" => &["B"],
        "p" => &["P"],
        "m" => &["M"],
        "f" => &["F"],
        "d" => &["D"],
        "t" => &["T"],
        "n" => &["N"],
        "l" => &["L"],
        "g" => &["G"],
        "k" => &["K"],
        "h" => &["HH"],
        "j" | "zh" => &["JH"],
        "q" | "ch" => &["CH"],
        "x" | "sh" => &["SH"],
        "r" => &["R"],
        "z" => &["Z"],
        "c" => &["T", "S"],
        "s" => &["S"],
        "y" => &["Y"],
        "w" => &["W"],
        _ => &[],
    }
}

/// The final after `initial`; `u` after j, q, x and y is ü, and `i` after
/// the sibilants is the buzzed vowel, not "ee".
fn final_phones(initial: &str, rest: &str) -> Option<&'static [&'static str]> {
    let palatal = matches!(initial, "j" | "q" | "x" | "y");
    let phones: &'static [&'static str] = match (rest, palatal) {
        ("a", _) => &["AA"],
        ("o", _) => &["AO"],
        ("e", true) => &["EH"],
        ("e", false) => &["AH"],
        ("i", _) if matches!(initial, "z" | "c" | "s") => &["IH"],
        ("i", _) if matches!(initial, "zh" | "ch" | "sh" | "r") => &["ER"],
        ("i", _) => &["IY"],
        ("u", true) | ("v", _) => &["UW"],
        ("u", false) => &["UW"],
        ("ai", _) => &["AY"],
        ("ei", _) => &["EY"],
        ("ao", _) => &["AW"],
        ("ou", _) => &["OW"],
        ("an", true) if initial == "y" => &["EH", "N"],
        ("an", _) => &["AA", "N"],
        ("en", _) => &["AH", "N"],
        ("ang", _) => &["AA", "NG"],
        ("eng", _) => &["AH", "NG"],
        ("ong", _) => &["UH", "NG"],
        ("er", _) => &["ER"],
        ("ia", _) => &["Y", "AA"],
        ("ie", _) => &["Y", "EH"],
        ("iao", _) => &["Y", "AW"],
        ("iu", _) | ("iou", _) => &["Y", "OW"],
        ("ian", _) => &["Y", "EH", "N"],
        ("in", _) => &["IY", "N"],
        ("iang", _) => &["Y", "AA", "NG"],
        ("ing", _) => &["IY", "NG"],
        ("iong", _) => &["Y", "UH", "NG"],
        ("ua", _) => &["W", "AA"],
        ("uo", _) => &["W", "AO"],
        ("uai", _) => &["W", "AY"],
        ("ui", _) | ("uei", _) => &["W", "EY"],
        ("uan", true) | ("van", _) => &["UW", "EH", "N"],
        ("uan", false) => &["W", "AA", "N"],
        ("un", true) | ("vn", _) => &["UW", "N"],
        ("un", false) | ("uen", _) => &["W", "AH", "N"],
        ("uang", _) => &["W", "AA", "NG"],
        ("ueng", _) => &["W", "AH", "NG"],
        ("ue", _) | ("ve", _) => &["UW", "EH"],
        _ => return None,
    };
    Some(phones)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_become_syllables() {
        assert_eq!(
            syllables("故障").expect("Chinese"),
            ["gu", "zhang"].map(String::from)
        );
        assert_eq!(
            syllables("报障，人工").expect("Chinese"),
            ["bao", "zhang", "ren", "gong"].map(String::from)
        );
        assert_eq!(syllables("fault"), None);
        assert!(has_chinese("查询 status"));
        assert!(!has_chinese("report a fault"));
    }

    #[test]
    fn syllables_become_phones() {
        let cases: [(&str, &[&str]); 12] = [
            ("gu", &["G", "UW"]),
            ("zhang", &["JH", "AA", "NG"]),
            ("bao", &["B", "AW"]),
            ("cha", &["CH", "AA"]),
            ("xun", &["SH", "UW", "N"]),
            ("ren", &["R", "AH", "N"]),
            ("gong", &["G", "UH", "NG"]),
            ("shi", &["SH", "ER"]),
            ("zi", &["Z", "IH"]),
            ("yue", &["Y", "UW", "EH"]),
            ("lv", &["L", "UW"]),
            ("er", &["ER"]),
        ];
        for (syllable, expected) in cases {
            assert_eq!(phones(syllable).as_deref(), Some(expected), "{syllable}");
        }
        assert_eq!(phones("qx"), None);
    }

    #[test]
    fn every_syllable_the_tables_can_give_has_phones() {
        // A sample across the common characters: all map.
        let text = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严";
        for syllable in syllables(text).expect("Chinese") {
            assert!(phones(&syllable).is_some(), "{syllable}");
        }
    }
}
