//! `sla.toml` as an operator writes it: any text must load or be refused
//! with problems (each with a line in the file), never panic. For a policy
//! that loads, every limit prints as text that reads back as the same
//! limit, and every deadline of every clock, category and level, started
//! at instants around the year's DST changes, is no earlier than its start;
//! a working-hours deadline lies that much working time after its start.

#![no_main]

use chrono::{DateTime, Utc};
use hotline::tickets::model::CustomerLevel;
use hotline::tickets::sla::{Limit, SlaClock, SlaPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count().max(1);
    let policy = match SlaPolicy::from_toml(text, "sla.toml") {
        Ok(policy) => policy,
        Err(error) => {
            assert!(!error.problems().is_empty(), "refused without a reason");
            for problem in error.problems() {
                assert!(problem.line.unwrap_or(1) <= lines + 1, "{problem}");
            }
            let _ = error.to_string();
            return;
        }
    };
    let calendar = policy.calendar();
    let starts = [
        "2026-01-01T00:00:00Z",
        "2026-03-29T00:59:00Z",
        "2026-11-01T06:30:00Z",
    ]
    .map(|at| at.parse::<DateTime<Utc>>().unwrap());
    // An unknown category falls back to the default one.
    let categories = policy.categories().into_iter().chain(["unknown"]);
    for (index, category) in categories.enumerate() {
        let _ = policy.category_name(category);
        for &clock in SlaClock::ALL {
            for (level_index, &level) in CustomerLevel::ALL.iter().enumerate() {
                let Some(limit) = policy.limit(clock, category, level) else {
                    continue;
                };
                assert_eq!(limit.to_string().parse::<Limit>(), Ok(limit));
                // Deadlines are slow to compute: one level per category.
                if level_index != index % CustomerLevel::ALL.len() {
                    continue;
                }
                let start = starts[index % starts.len()];
                let deadline = limit.deadline(start, calendar);
                assert!(deadline >= start, "{limit} from {start} is due {deadline}");
                if let Limit::WorkingHours(amount) = limit {
                    if deadline < start + chrono::Duration::days(400) {
                        assert_eq!(
                            calendar.working_time_between(start, deadline),
                            amount,
                            "{limit} from {start} is due {deadline}"
                        );
                    }
                }
            }
        }
    }
});
