//! The texts a customer is sent about their ticket, and who can be sent
//! one. Pure: the store writes a notification into the outbox in the same
//! transaction as the change that causes it, and the SMS outbox worker
//! delivers it; neither the clock nor the database is touched here.

use super::model::{Language, TicketType};
use super::number::TicketNumber;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Whether a text message can reach `phone` (normalised: digits, maybe a
/// leading +): a mainland mobile number (11 digits starting 13–19, with or
/// without 86 / +86 / 0086), or any other country's number in + form.
/// Landlines get no SMS: a provider would only bounce it.
pub fn can_receive_sms(phone: &str) -> bool {
    let national = ["+86", "0086", "86"]
        .iter()
        .find_map(|prefix| phone.strip_prefix(prefix).filter(|rest| rest.len() == 11))
        .unwrap_or(phone);
    let mainland_mobile = national.len() == 11
        && national.starts_with('1')
        && matches!(national.as_bytes()[1], b'3'..=b'9')
        && national.bytes().all(|b| b.is_ascii_digit());
    mainland_mobile || (phone.starts_with('+') && !phone.starts_with("+86"))
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
            format!(
                "【10000】您的{}工单已受理，工单号{number}{promise}。查询进度请回复：查询 {number}",
                ticket_type.chinese_name()
            )
        }
        Language::En => {
            let promise = due
                .map(|d| format!(" Repair promised by {}.", d.format("%Y-%m-%d %H:%M")))
                .unwrap_or_default();
            format!(
                "10000: your {} ticket {number} is open.{promise} Reply STATUS {number} for progress.",
                english_name(ticket_type)
            )
        }
    }
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

    #[test]
    fn mobiles_and_foreign_numbers_get_texts_landlines_do_not() {
        for phone in [
            "13800138000",
            "+8613800138000",
            "8613800138000",
            "008619912345678",
            "+14155550100",
        ] {
            assert!(can_receive_sms(phone), "{phone}");
        }
        for phone in [
            "01012345678",
            "55512345",
            "+861012345678",
            "12800138000",
            "1380013800",
            "",
        ] {
            assert!(!can_receive_sms(phone), "{phone}");
        }
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
