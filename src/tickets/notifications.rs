//! The texts a customer is sent about their ticket, and who can be sent
//! one. Pure: the store writes a notification into the outbox in the same
//! transaction as the change that causes it, and the SMS outbox worker
//! delivers it; neither the clock nor the database is touched here. Every
//! text fits in [`MAX_SEGMENTS`] SMS parts.

use super::model::{Language, TicketType};
use super::number::TicketNumber;
use crate::sms::segments;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::fmt;

/// The most SMS parts a notification may take.
pub const MAX_SEGMENTS: usize = 3;

/// What a notification is about; its code is the outbox row's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationKind {
    /// The ticket is open: its number and promised repair time.
    TicketCreated,
    /// The ticket went to the engineers.
    Dispatched,
    /// The work is done: is the service restored? (a bare 1 or 2 answers it)
    Resolved,
    /// The repair deadline passed: an apology.
    SlaBreached,
}

impl NotificationKind {
    pub const ALL: &'static [NotificationKind] = &[
        NotificationKind::TicketCreated,
        NotificationKind::Dispatched,
        NotificationKind::Resolved,
        NotificationKind::SlaBreached,
    ];

    /// The `kind` stored in the outbox (`ticket_created`, `dispatched`,
    /// `resolved`, `sla_breached`).
    pub fn code(self) -> &'static str {
        match self {
            NotificationKind::TicketCreated => "ticket_created",
            NotificationKind::Dispatched => "dispatched",
            NotificationKind::Resolved => "resolved",
            NotificationKind::SlaBreached => "sla_breached",
        }
    }
}

impl fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// "Your ticket is open": its number, the promised repair time (local to
/// the SLA calendar) when it has one, and how to ask for its status.
pub fn ticket_created(
    language: Language,
    number: &TicketNumber,
    ticket_type: TicketType,
    repair_due: Option<DateTime<Utc>>,
    zone: Tz,
) -> String {
    let due = repair_due.map(|due| due.with_timezone(&zone));
    match language {
        Language::Zh => {
            let promise = due
                .map(|d| format!("，承诺修复时间{}", d.format("%-m月%-d日%H:%M")))
                .unwrap_or_default();
            fitted(format!(
                "【10000】您的{}工单已受理，工单号{number}{promise}。查询进度请回复：查询 {number}",
                ticket_type.chinese_name()
            ))
        }
        Language::En => {
            let promise = due
                .map(|d| format!(" Repair promised by {}.", d.format("%Y-%m-%d %H:%M")))
                .unwrap_or_default();
            fitted(format!(
                "10000: your {} ticket {number} is open.{promise} Reply STATUS {number} for progress.",
                english_name(ticket_type)
            ))
        }
    }
}

/// "Your ticket went to the engineers".
pub fn dispatched(language: Language, number: &TicketNumber) -> String {
    fitted(match language {
        Language::Zh => format!(
            "【10000】您的工单{number}已派发给维修人员，我们将尽快处理。查询进度请回复：查询 {number}"
        ),
        Language::En => format!(
            "10000: ticket {number} has been passed to our engineers, who will handle it as soon as possible. Reply STATUS {number} for progress."
        ),
    })
}

/// "The work is done; is the service back?" A bare 1 (restored) or 2 (not
/// restored) in reply answers the latest of these sent to the recipient.
pub fn resolved(language: Language, number: &TicketNumber) -> String {
    fitted(match language {
        Language::Zh => {
            format!("【10000】您的工单{number}已处理完毕。服务已恢复请回复1，未恢复请回复2。")
        }
        Language::En => format!(
            "10000: ticket {number} has been resolved. Reply 1 if service is restored, 2 if not."
        ),
    })
}

/// The apology sent when the promised repair time passed.
pub fn sla_breached(
    language: Language,
    number: &TicketNumber,
    repair_due: DateTime<Utc>,
    zone: Tz,
) -> String {
    let due = repair_due.with_timezone(&zone);
    fitted(match language {
        Language::Zh => format!(
            "【10000】非常抱歉，您的工单{number}未能在承诺时间{}前修复。我们正在加紧处理，修复后将短信通知您。",
            due.format("%-m月%-d日%H:%M")
        ),
        Language::En => format!(
            "10000: we are sorry that ticket {number} was not repaired by {} as promised. We are working on it and will text you when it is fixed.",
            due.format("%Y-%m-%d %H:%M")
        ),
    })
}

/// The text cut to [`MAX_SEGMENTS`] parts should it ever grow too long.
fn fitted(text: String) -> String {
    segments::fit(&text, MAX_SEGMENTS)
}

/// The name of a ticket type in English texts.
pub fn english_name(ticket_type: TicketType) -> &'static str {
    match ticket_type {
        TicketType::FaultReport => "fault report",
        TicketType::Complaint => "complaint",
        TicketType::Consultation => "consultation",
        TicketType::NewInstallation => "new installation",
        TicketType::Change => "product change",
        TicketType::ScheduledCancellation => "scheduled cancellation",
        TicketType::Cancellation => "cancellation",
        TicketType::TerminalRepair => "terminal repair",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample_number() -> TicketNumber {
        let digits = [5, 5, 5, 1, 2, 3, 4, 5, 6];
        let check = crate::tickets::number::damm_digit(digits);
        format!("555123456{check}").parse().unwrap()
    }

    #[test]
    fn every_text_fits_in_three_parts_uncut_in_both_languages() {
        let number = sample_number();
        let due = Utc.with_ymd_and_hms(2026, 12, 31, 15, 59, 0).unwrap();
        let zone = chrono_tz::Asia::Shanghai;
        for language in [Language::Zh, Language::En] {
            let texts = [
                ticket_created(
                    language,
                    &number,
                    TicketType::ScheduledCancellation,
                    Some(due),
                    zone,
                ),
                dispatched(language, &number),
                resolved(language, &number),
                sla_breached(language, &number, due, zone),
            ];
            for text in texts {
                assert!(segments::segments(&text) <= MAX_SEGMENTS, "{text}");
                assert!(text.contains(&number.to_string()), "{text}");
                assert!(!text.ends_with('…') && !text.ends_with("..."), "{text}");
            }
        }
    }

    #[test]
    fn the_resolved_text_asks_for_1_or_2() {
        let number = sample_number();
        assert_eq!(
            resolved(Language::Zh, &number),
            format!("【10000】您的工单{number}已处理完毕。服务已恢复请回复1，未恢复请回复2。")
        );
        assert_eq!(
            resolved(Language::En, &number),
            format!("10000: ticket {number} has been resolved. Reply 1 if service is restored, 2 if not.")
        );
        assert_eq!(NotificationKind::Resolved.code(), "resolved");
    }

    #[test]
    fn the_apology_gives_the_missed_time_locally() {
        let number = sample_number();
        let due = Utc.with_ymd_and_hms(2026, 11, 30, 10, 30, 0).unwrap();
        let zh = sla_breached(Language::Zh, &number, due, chrono_tz::Asia::Shanghai);
        assert!(zh.contains("11月30日18:30"), "{zh}");
        let en = sla_breached(Language::En, &number, due, chrono_tz::Asia::Shanghai);
        assert!(en.contains("2026-11-30 18:30"), "{en}");
    }

    #[test]
    fn the_created_text_has_the_number_and_the_local_repair_time() {
        let number: TicketNumber = {
            let digits = [5, 5, 5, 1, 2, 3, 4, 5, 6];
            let check = crate::tickets::number::damm_digit(digits);
            format!("555123456{check}").parse().unwrap()
        };
        let due = Utc.with_ymd_and_hms(2026, 11, 30, 10, 30, 0).unwrap();
        let zh = ticket_created(
            Language::Zh,
            &number,
            TicketType::FaultReport,
            Some(due),
            chrono_tz::Asia::Shanghai,
        );
        assert_eq!(
            zh,
            format!("【10000】您的客户报障工单已受理，工单号{number}，承诺修复时间11月30日18:30。查询进度请回复：查询 {number}")
        );
        let en = ticket_created(
            Language::En,
            &number,
            TicketType::Complaint,
            None,
            chrono_tz::Asia::Shanghai,
        );
        assert_eq!(
            en,
            format!("10000: your complaint ticket {number} is open. Reply STATUS {number} for progress.")
        );
    }
}
