//! PocketSphinx as a [`Recognizer`]: Debian's `libpocketsphinx3` (the
//! 5prealpha API) and its US English model, loaded at run time with
//! `libloading`, so that the gateway builds and runs without them (speech
//! is then off, and menus take keys only).
//!
//! Each grammar becomes a JSGF search over its phrases; words come from
//! the model's CMU dictionary, Mandarin syllables from `pinyin` (added as
//! `py_<syllable>`). Telephone audio is 8 kHz and the model 16 kHz: the
//! samples are doubled (a zero-order hold) rather than interpolated,
//! because the images the hold leaves above 4 kHz give the model's upper
//! filters the energy it was trained to see; a band-limited upsampling
//! recognised far worse (docs/benchmarks.md). Confidence is a likelihood
//! ratio: the grammar's best path against a free loop of context-free
//! phones over the same frames, per frame, through a logistic: above 0.5
//! when the phrase explains the audio better than the free loop does.
//!
//! A decoder is not thread-safe: the recognizer keeps a pool, each behind
//! a mutex, and a recognition takes a free one (or waits). Recognitions
//! run on tokio's blocking pool, never on a media thread.

use super::{Grammar, Hypothesis, Recognizer, SpeechError};
use libloading::Library;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The library Debian's `libpocketsphinx3` installs.
pub const LIBRARY: &str = "libpocketsphinx.so.3";
/// The model Debian's `pocketsphinx-en-us` installs.
pub const MODEL_DIR: &str = "/usr/share/pocketsphinx/model/en-us";
/// The per-frame score margin (grammar over phone loop, in pocketsphinx's
/// log units) that maps to confidence 0.73 (`1 / (1 + e^-1)`): on the test
/// set (docs/benchmarks.md) in-grammar phrases mostly score 2 to 20 and
/// other speech -10 to 8, so the margin is spread over that range.
const MARGIN_SCALE: f64 = 5.0;
/// The free phone loop's search name.
const PHONE_LOOP: &str = "phone_loop";

type Decoder = c_void;
type CmdLn = c_void;

struct Api {
    ps_args: unsafe extern "C" fn() -> *const c_void,
    cmd_ln_parse_r:
        unsafe extern "C" fn(*mut CmdLn, *const c_void, i32, *mut *mut c_char, i32) -> *mut CmdLn,
    cmd_ln_free_r: unsafe extern "C" fn(*mut CmdLn) -> c_int,
    ps_init: unsafe extern "C" fn(*mut CmdLn) -> *mut Decoder,
    ps_free: unsafe extern "C" fn(*mut Decoder) -> c_int,
    ps_add_word: unsafe extern "C" fn(*mut Decoder, *const c_char, *const c_char, c_int) -> c_int,
    ps_set_jsgf_string: unsafe extern "C" fn(*mut Decoder, *const c_char, *const c_char) -> c_int,
    ps_set_allphone_file: unsafe extern "C" fn(*mut Decoder, *const c_char, *const c_char) -> c_int,
    ps_set_search: unsafe extern "C" fn(*mut Decoder, *const c_char) -> c_int,
    ps_start_utt: unsafe extern "C" fn(*mut Decoder) -> c_int,
    ps_process_raw: unsafe extern "C" fn(*mut Decoder, *const i16, usize, c_int, c_int) -> c_int,
    ps_end_utt: unsafe extern "C" fn(*mut Decoder) -> c_int,
    ps_get_hyp: unsafe extern "C" fn(*mut Decoder, *mut i32) -> *const c_char,
    ps_get_n_frames: unsafe extern "C" fn(*mut Decoder) -> c_int,
    /// Keeps the functions above valid.
    _library: Library,
}

impl Api {
    fn load(library: &str) -> Result<Api, SpeechError> {
        let unavailable =
            |e: libloading::Error| SpeechError::Unavailable(format!("{library}: {e}"));
        // SAFETY: loading runs the library's initialisers; libpocketsphinx
        // and libsphinxbase have none beyond the C runtime's.
        let lib = unsafe { Library::new(library) }.map_err(unavailable)?;
        macro_rules! symbol {
            ($name:ident) => {
                // SAFETY: the type is the function's C signature in
                // pocketsphinx.h / cmd_ln.h of pocketsphinx 5prealpha.
                *unsafe { lib.get(concat!(stringify!($name), "\0").as_bytes()) }
                    .map_err(unavailable)?
            };
        }
        Ok(Api {
            ps_args: symbol!(ps_args),
            cmd_ln_parse_r: symbol!(cmd_ln_parse_r),
            cmd_ln_free_r: symbol!(cmd_ln_free_r),
            ps_init: symbol!(ps_init),
            ps_free: symbol!(ps_free),
            ps_add_word: symbol!(ps_add_word),
            ps_set_jsgf_string: symbol!(ps_set_jsgf_string),
            ps_set_allphone_file: symbol!(ps_set_allphone_file),
            ps_set_search: symbol!(ps_set_search),
            ps_start_utt: symbol!(ps_start_utt),
            ps_process_raw: symbol!(ps_process_raw),
            ps_end_utt: symbol!(ps_end_utt),
            ps_get_hyp: symbol!(ps_get_hyp),
            ps_get_n_frames: symbol!(ps_get_n_frames),
            _library: lib,
        })
    }
}

/// One decoder and the grammars (searches) and words it has.
struct Session {
    api: Arc<Api>,
    decoder: *mut Decoder,
    config: *mut CmdLn,
    searches: BTreeSet<String>,
    words: BTreeSet<String>,
}

// SAFETY: a session is only used by one thread at a time (it lives behind
// a mutex), and pocketsphinx keeps no thread-local state.
unsafe impl Send for Session {}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: both were made by ps_init / cmd_ln_parse_r and are freed
        // once, here.
        unsafe {
            (self.api.ps_free)(self.decoder);
            (self.api.cmd_ln_free_r)(self.config);
        }
    }
}

fn c_string(text: &str) -> Result<CString, SpeechError> {
    CString::new(text).map_err(|_| SpeechError::Grammar(format!("{text:?} holds a NUL")))
}

impl Session {
    fn new(api: Arc<Api>, model: &Path) -> Result<Session, SpeechError> {
        let hmm = model.join("en-us");
        let phone_lm = model.join("en-us-phone.lm.bin");
        // Starts with a dictionary of one filler-free word; each grammar
        // adds the words it needs.
        let dict = std::env::temp_dir().join(format!(
            "hotline-sphinx-{}-{:016x}.dict",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::write(&dict, "a AH\n").map_err(|e| SpeechError::Unavailable(e.to_string()))?;
        let args: Vec<CString> = [
            "hotline",
            "-hmm",
            &hmm.to_string_lossy(),
            "-dict",
            &dict.to_string_lossy(),
            "-logfn",
            "/dev/null",
            "-remove_silence",
            "no",
            // Context-independent phones for the free phone loop: a tenth
            // of the CPU of triphones, and enough for a likelihood ratio.
            "-allphone_ci",
            "yes",
        ]
        .iter()
        .map(|a| c_string(a))
        .collect::<Result<_, _>>()?;
        let mut argv: Vec<*mut c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
        // SAFETY: argv points at NUL-terminated strings that outlive the
        // call; pocketsphinx copies what it keeps.
        let config = unsafe {
            (api.cmd_ln_parse_r)(
                std::ptr::null_mut(),
                (api.ps_args)(),
                i32::try_from(argv.len()).unwrap_or(0),
                argv.as_mut_ptr(),
                1,
            )
        };
        if config.is_null() {
            return Err(SpeechError::Unavailable(
                "pocketsphinx refused its arguments".into(),
            ));
        }
        // SAFETY: config is a valid argument set.
        let decoder = unsafe { (api.ps_init)(config) };
        let _ = std::fs::remove_file(&dict);
        if decoder.is_null() {
            // SAFETY: made above, not used again.
            unsafe { (api.cmd_ln_free_r)(config) };
            return Err(SpeechError::Unavailable(format!(
                "pocketsphinx cannot load the model in {}",
                hmm.display()
            )));
        }
        let mut session = Session {
            api,
            decoder,
            config,
            searches: BTreeSet::new(),
            words: BTreeSet::new(),
        };
        let name = c_string(PHONE_LOOP)?;
        let path = c_string(&phone_lm.to_string_lossy())?;
        // SAFETY: valid decoder and strings.
        if unsafe { (session.api.ps_set_allphone_file)(decoder, name.as_ptr(), path.as_ptr()) } < 0
        {
            return Err(SpeechError::Unavailable(format!(
                "pocketsphinx cannot load the phone model {}",
                phone_lm.display()
            )));
        }
        session.searches.insert(PHONE_LOOP.into());
        Ok(session)
    }

    /// Makes `grammar` a search of this decoder (once).
    fn prepare(&mut self, grammar: &Grammar, lexicon: &Lexicon) -> Result<(), SpeechError> {
        if self.searches.contains(&grammar.id) {
            return Ok(());
        }
        let compiled = lexicon.compile(grammar)?;
        for (word, phones) in &compiled.words {
            if self.words.contains(word) {
                continue;
            }
            let (w, p) = (c_string(word)?, c_string(phones)?);
            // SAFETY: valid decoder and strings; update = 1 makes the word
            // usable by searches made after it.
            unsafe { (self.api.ps_add_word)(self.decoder, w.as_ptr(), p.as_ptr(), 1) };
            self.words.insert(word.clone());
        }
        let (name, jsgf) = (c_string(&grammar.id)?, c_string(&compiled.jsgf)?);
        // SAFETY: valid decoder and strings.
        if unsafe { (self.api.ps_set_jsgf_string)(self.decoder, name.as_ptr(), jsgf.as_ptr()) } < 0
        {
            return Err(SpeechError::Grammar(format!(
                "pocketsphinx refused the grammar of {}",
                grammar.id
            )));
        }
        self.searches.insert(grammar.id.clone());
        Ok(())
    }

    /// Decodes `audio` (16 kHz) with search `name`: the hypothesis, its
    /// score and the frames.
    fn decode(&mut self, name: &str, audio: &[i16]) -> Result<(String, i32, i32), SpeechError> {
        let name = c_string(name)?;
        let api = &self.api;
        // SAFETY: valid decoder; audio outlives the call; one utterance at
        // a time (we hold the session).
        unsafe {
            if (api.ps_set_search)(self.decoder, name.as_ptr()) < 0
                || (api.ps_start_utt)(self.decoder) < 0
            {
                return Err(SpeechError::Failed("cannot start an utterance".into()));
            }
            (api.ps_process_raw)(self.decoder, audio.as_ptr(), audio.len(), 0, 1);
            (api.ps_end_utt)(self.decoder);
            let mut score = 0i32;
            let hyp = (api.ps_get_hyp)(self.decoder, &mut score);
            let text = if hyp.is_null() {
                String::new()
            } else {
                CStr::from_ptr(hyp).to_string_lossy().into_owned()
            };
            Ok((text, score, (api.ps_get_n_frames)(self.decoder)))
        }
    }
}

/// Pronunciations: the model's CMU dictionary for English words, pinyin
/// for Mandarin.
struct Lexicon {
    english: BTreeMap<String, String>,
}

/// A grammar as pocketsphinx takes it.
#[derive(Debug)]
struct Compiled {
    jsgf: String,
    /// Word → phones, for every word the JSGF uses.
    words: BTreeMap<String, String>,
}

impl Lexicon {
    fn load(dict: &Path) -> Result<Lexicon, SpeechError> {
        let text = std::fs::read_to_string(dict)
            .map_err(|e| SpeechError::Unavailable(format!("{}: {e}", dict.display())))?;
        let english = text
            .lines()
            .filter_map(|line| line.split_once(' '))
            // Alternates ("word(2)") are left out: one pronunciation each.
            .filter(|(word, _)| !word.ends_with(')'))
            .map(|(word, phones)| (word.to_string(), phones.trim().to_string()))
            .collect();
        Ok(Lexicon { english })
    }

    /// The words of one phrase, with their phones.
    fn phrase(&self, phrase: &str) -> Result<Vec<(String, String)>, SpeechError> {
        if let Some(syllables) = super::pinyin::syllables(phrase) {
            return syllables
                .into_iter()
                .map(|syllable| {
                    let phones = super::pinyin::phones(&syllable).ok_or_else(|| {
                        SpeechError::Grammar(format!("{phrase:?}: no phones for {syllable}"))
                    })?;
                    Ok((format!("py_{syllable}"), phones.join(" ")))
                })
                .collect();
        }
        phrase
            .split_whitespace()
            .map(|word| {
                let word = word.to_lowercase();
                let phones = self.english.get(&word).ok_or_else(|| {
                    SpeechError::Grammar(format!(
                        "{phrase:?}: {word:?} is not in the pronouncing dictionary"
                    ))
                })?;
                Ok((word, phones.clone()))
            })
            .collect()
    }

    fn compile(&self, grammar: &Grammar) -> Result<Compiled, SpeechError> {
        let mut words = BTreeMap::new();
        let mut alternatives = Vec::new();
        for (_, phrase) in &grammar.phrases {
            let phrase_words = self.phrase(phrase)?;
            alternatives.push(
                phrase_words
                    .iter()
                    .map(|(w, _)| w.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            words.extend(phrase_words);
        }
        if alternatives.is_empty() {
            return Err(SpeechError::Grammar(format!(
                "{} has no phrases",
                grammar.id
            )));
        }
        let jsgf = format!(
            "#JSGF V1.0;\ngrammar menu;\npublic <choice> = {};\n",
            alternatives.join(" | ")
        );
        Ok(Compiled { jsgf, words })
    }

    /// The key of the phrase a hypothesis is.
    fn key_of(&self, grammar: &Grammar, hypothesis: &str) -> Option<(char, String)> {
        grammar.phrases.iter().find_map(|(key, phrase)| {
            let words: Vec<String> = self
                .phrase(phrase)
                .ok()?
                .into_iter()
                .map(|(w, _)| w)
                .collect();
            (words.join(" ") == hypothesis).then(|| (*key, phrase.clone()))
        })
    }
}

/// PocketSphinx behind the [`Recognizer`] trait.
pub struct Sphinx {
    sessions: Vec<Mutex<Session>>,
    lexicon: Lexicon,
}

impl Sphinx {
    /// Loads `library` and the model in `model` (Debian: [`LIBRARY`],
    /// [`MODEL_DIR`]) with `decoders` decoders (recognitions at once).
    pub fn load(library: &str, model: &Path, decoders: usize) -> Result<Sphinx, SpeechError> {
        let api = Arc::new(Api::load(library)?);
        let lexicon = Lexicon::load(&model.join("cmudict-en-us.dict"))?;
        let sessions = (0..decoders.max(1))
            .map(|_| Session::new(api.clone(), model).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(Sphinx { sessions, lexicon })
    }

    /// Checks a grammar's phrases can be pronounced (at dialplan load).
    pub fn check(&self, grammar: &Grammar) -> Result<(), SpeechError> {
        self.lexicon.compile(grammar).map(|_| ())
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        for session in &self.sessions {
            if let Ok(free) = session.try_lock() {
                return free;
            }
        }
        self.sessions[0]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// 8 kHz to 16 kHz by repeating each sample (see the module notes).
pub fn to_model_rate(audio: &[i16]) -> Vec<i16> {
    audio.iter().flat_map(|s| [*s, *s]).collect()
}

impl Recognizer for Sphinx {
    fn recognize(
        &self,
        grammar: &Grammar,
        audio: &[i16],
    ) -> Result<Option<Hypothesis>, SpeechError> {
        let wide = to_model_rate(audio);
        let mut session = self.session();
        session.prepare(grammar, &self.lexicon)?;
        let (text, score, frames) = session.decode(&grammar.id, &wide)?;
        let Some((key, phrase)) = self.lexicon.key_of(grammar, text.trim()) else {
            return Ok(None);
        };
        let (_, free, _) = session.decode(PHONE_LOOP, &wide)?;
        let per_frame = f64::from(score - free) / f64::from(frames.max(1));
        tracing::trace!(%text, score, free, frames, per_frame, "recognised");
        let confidence = 1.0 / (1.0 + (-per_frame / MARGIN_SCALE).exp());
        Ok(Some(Hypothesis {
            key,
            phrase,
            confidence: confidence as f32,
        }))
    }
}

/// Where the model lives by default.
pub fn default_model() -> PathBuf {
    PathBuf::from(MODEL_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lexicon() -> Lexicon {
        Lexicon {
            english: [
                ("report", "R IY P AO R T"),
                ("a", "AH"),
                ("fault", "F AO L T"),
                ("agent", "EY JH AH N T"),
            ]
            .map(|(w, p)| (w.to_string(), p.to_string()))
            .into_iter()
            .collect(),
        }
    }

    fn grammar() -> Grammar {
        Grammar {
            id: "test/menu".into(),
            phrases: [('9', "报障"), ('9', "Report a fault"), ('0', "agent")]
                .map(|(k, p)| (k, p.to_string()))
                .to_vec(),
        }
    }

    #[test]
    fn a_grammar_compiles_to_jsgf_with_every_word_pronounced() {
        let compiled = lexicon().compile(&grammar()).expect("compiles");
        assert_eq!(
            compiled.jsgf,
            "#JSGF V1.0;\ngrammar menu;\npublic <choice> = py_bao py_zhang | report a fault | agent;\n"
        );
        assert_eq!(compiled.words["py_bao"], "B AW");
        assert_eq!(compiled.words["py_zhang"], "JH AA NG");
        assert_eq!(compiled.words["report"], "R IY P AO R T");
        assert_eq!(compiled.words.len(), 6);
    }

    #[test]
    fn a_hypothesis_maps_back_to_its_key_and_unknown_words_are_named() {
        let lexicon = lexicon();
        assert_eq!(
            lexicon.key_of(&grammar(), "py_bao py_zhang"),
            Some(('9', "报障".to_string()))
        );
        assert_eq!(
            lexicon.key_of(&grammar(), "agent"),
            Some(('0', "agent".to_string()))
        );
        assert_eq!(lexicon.key_of(&grammar(), "fault"), None);
        let unknown = Grammar {
            id: "test/other".into(),
            phrases: vec![('1', "status".into())],
        };
        let error = lexicon.compile(&unknown).expect_err("not pronounced");
        assert!(error
            .to_string()
            .contains("\"status\" is not in the pronouncing dictionary"));
    }

    #[test]
    fn telephone_audio_is_doubled_to_the_model_rate() {
        assert_eq!(to_model_rate(&[1, -2, 3]), [1, 1, -2, -2, 3, 3]);
    }
}
