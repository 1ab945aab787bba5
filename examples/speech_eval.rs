//! Measures speech recognition on the test set (tests/data/speech, made by
//! its make.sh): every file is recognised against the 10000 main menu's
//! grammar with the PocketSphinx recognizer, and for each confidence
//! threshold it prints the share of in-grammar phrases recognised as
//! their key (per language), wrong keys, rejections, the false accepts of
//! other speech and noise, and the CPU time per recognition and per
//! second of speech (the thread's own CPU clock).
//!
//!     cargo run --release --example speech_eval [DIR] [LIBRARY] [MODEL_DIR]

use hotline::speech::sphinx::{Sphinx, LIBRARY, MODEL_DIR};
use hotline::speech::{Grammar, Recognizer};
use std::path::PathBuf;
use std::time::Duration;

struct Case {
    file: String,
    key: Option<char>,
    language: String,
    samples: Vec<i16>,
}

struct Outcome {
    expected: Option<char>,
    language: String,
    got: Option<(char, f32)>,
    cpu: Duration,
    seconds: f64,
}

fn thread_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).map_or("tests/data/speech", String::as_str));
    let library = args.get(2).map_or(LIBRARY, String::as_str);
    let model = PathBuf::from(args.get(3).map_or(MODEL_DIR, String::as_str));
    let manifest = std::fs::read_to_string(dir.join("manifest.csv"))?;
    let mut cases = Vec::new();
    for line in manifest.lines().skip(1) {
        let fields: Vec<&str> = line.splitn(4, ',').collect();
        let [file, key, language, _] = fields[..] else {
            anyhow::bail!("bad manifest line {line:?}");
        };
        let samples = hound::WavReader::open(dir.join(file))?
            .samples::<i16>()
            .collect::<Result<Vec<_>, _>>()?;
        cases.push(Case {
            file: file.to_string(),
            key: key.chars().next().filter(|k| *k != '-'),
            language: language.to_string(),
            samples,
        });
    }
    let grammar = Grammar {
        id: "10000/main_menu".into(),
        phrases: [
            ('9', "故障"),
            ('9', "报障"),
            ('9', "fault"),
            ('9', "report a fault"),
            ('1', "查询"),
            ('1', "status"),
            ('0', "人工"),
            ('0', "agent"),
        ]
        .map(|(k, p)| (k, p.to_string()))
        .to_vec(),
    };
    let sphinx = Sphinx::load(library, &model, 1)?;
    // Warm up: the first recognition builds the grammar's search.
    sphinx.recognize(&grammar, &cases[0].samples)?;
    let mut outcomes = Vec::new();
    for case in &cases {
        let before = thread_cpu();
        let hypothesis = sphinx.recognize(&grammar, &case.samples)?;
        let cpu = thread_cpu() - before;
        if std::env::var_os("VERBOSE").is_some() {
            println!("{} expected {:?} got {:?}", case.file, case.key, hypothesis);
        }
        outcomes.push(Outcome {
            expected: case.key,
            language: case.language.clone(),
            got: hypothesis.map(|h| (h.key, h.confidence)),
            cpu,
            seconds: case.samples.len() as f64 / 8000.0,
        });
    }
    let mut cpu_per_recognition: Vec<f64> = outcomes
        .iter()
        .map(|o| o.cpu.as_secs_f64() * 1000.0)
        .collect();
    cpu_per_recognition.sort_by(f64::total_cmp);
    let cpu_total: f64 = outcomes.iter().map(|o| o.cpu.as_secs_f64()).sum();
    let audio_total: f64 = outcomes.iter().map(|o| o.seconds).sum();
    println!(
        "{} files, {:.1} s of audio; CPU per recognition: median {:.1} ms, max {:.1} ms; \
         {:.1} ms of CPU per second of audio",
        outcomes.len(),
        audio_total,
        cpu_per_recognition[cpu_per_recognition.len() / 2],
        cpu_per_recognition[cpu_per_recognition.len() - 1],
        cpu_total / audio_total * 1000.0
    );
    println!("threshold | zh correct | en correct | wrong key | rejected | false accepts");
    for threshold in [0.0f32, 0.5, 0.6, 0.7, 0.8, 0.9] {
        let accepted = |o: &Outcome| o.got.filter(|(_, c)| *c >= threshold).map(|(k, _)| k);
        let share = |language: &str| {
            let set: Vec<&Outcome> = outcomes
                .iter()
                .filter(|o| o.expected.is_some() && o.language == language)
                .collect();
            let right = set.iter().filter(|o| accepted(o) == o.expected).count();
            format!(
                "{right}/{} ({:.1} %)",
                set.len(),
                100.0 * right as f64 / set.len() as f64
            )
        };
        let in_grammar: Vec<&Outcome> = outcomes.iter().filter(|o| o.expected.is_some()).collect();
        let wrong = in_grammar
            .iter()
            .filter(|o| accepted(o).is_some_and(|k| Some(k) != o.expected))
            .count();
        let rejected = in_grammar.iter().filter(|o| accepted(o).is_none()).count();
        let others: Vec<&Outcome> = outcomes.iter().filter(|o| o.expected.is_none()).collect();
        let false_accepts = others.iter().filter(|o| accepted(o).is_some()).count();
        println!(
            "{threshold:.1} | {} | {} | {wrong} | {rejected} | {false_accepts}/{} ({:.1} %)",
            share("zh"),
            share("en"),
            others.len(),
            100.0 * false_accepts as f64 / others.len() as f64
        );
    }
    Ok(())
}
