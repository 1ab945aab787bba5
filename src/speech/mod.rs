//! Speech as another way to press a key: a menu's `listen` phrases form a
//! small grammar; what the caller says is recognised offline against it,
//! and the phrase's key is pressed when the confidence reaches the
//! threshold. Recognition is behind [`Recognizer`] so that the engine and
//! the call glue never depend on one toolkit; the first implementation is
//! PocketSphinx (`sphinx`), loaded at run time: without the library the
//! gateway runs, and menus take keys only.

pub mod pinyin;
pub mod sphinx;

use thiserror::Error;

/// The phrases one menu listens for, each with the key it presses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grammar {
    /// Unique per plan and node (`10000/main_menu`); a recognizer may keep
    /// what it built for it under this name.
    pub id: String,
    /// (key, phrase) in the plan's order.
    pub phrases: Vec<(char, String)>,
}

/// What was recognised.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    pub key: char,
    pub phrase: String,
    /// 0 to 1: how much better the phrase explains the audio than
    /// anything else would.
    pub confidence: f32,
}

#[derive(Debug, Error)]
pub enum SpeechError {
    #[error("speech recognition is not available: {0}")]
    Unavailable(String),
    #[error("grammar: {0}")]
    Grammar(String),
    #[error("recognition failed: {0}")]
    Failed(String),
}

/// Offline recognition of one utterance (8 kHz mono samples) against a
/// grammar. Blocking: call it off the media and async threads.
pub trait Recognizer: Send + Sync {
    /// The phrase heard, if the audio matches one at all (`None`: nothing
    /// of the grammar was heard).
    fn recognize(
        &self,
        grammar: &Grammar,
        audio: &[i16],
    ) -> Result<Option<Hypothesis>, SpeechError>;
}
