//! PocketSphinx on real audio from the test set (tests/data/speech), when
//! Debian's libpocketsphinx3 and pocketsphinx-en-us are installed (CI
//! installs them); without them the gateway has no speech and this test
//! says so and passes. The files are ones the recogniser gets right at
//! every run (docs/benchmarks.md has the whole set's figures).

use hotline::speech::sphinx::{default_model, Sphinx, LIBRARY};
use hotline::speech::{Grammar, Recognizer, SpeechError};
use std::path::Path;

fn samples(file: &str) -> Vec<i16> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/speech")
        .join(file);
    hound::WavReader::open(path)
        .expect("a test-set file")
        .samples::<i16>()
        .map(|s| s.expect("a sample"))
        .collect()
}

#[test]
fn menu_phrases_are_recognised_in_both_languages() {
    let sphinx = match Sphinx::load(LIBRARY, &default_model(), 1) {
        Ok(sphinx) => sphinx,
        Err(SpeechError::Unavailable(why)) => {
            eprintln!("PocketSphinx is not installed here, nothing to test: {why}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let grammar = Grammar {
        id: "10000/main_menu".into(),
        phrases: [
            ('9', "故障"),
            ('9', "fault"),
            ('1', "查询"),
            ('1', "status"),
            ('0', "agent"),
        ]
        .map(|(k, p)| (k, p.to_string()))
        .to_vec(),
    };
    for (file, key) in [
        ("001-zh-9.wav", '9'),
        ("011-zh-1.wav", '1'),
        ("061-en-9.wav", '9'),
        ("076-en-0.wav", '0'),
    ] {
        let heard = sphinx
            .recognize(&grammar, &samples(file))
            .expect("recognised")
            .unwrap_or_else(|| panic!("{file}: nothing recognised"));
        assert_eq!(heard.key, key, "{file}: {heard:?}");
        assert!((0.0..=1.0).contains(&heard.confidence), "{heard:?}");
    }
    // Line noise is not a phrase.
    let noise = sphinx
        .recognize(&grammar, &samples("151-noise.wav"))
        .expect("ran");
    assert!(noise.is_none() || noise.is_some_and(|h| h.confidence < 0.5));
}
