//! The reply to an inbound text, in the sender's language: pure functions
//! from what the text asked ([`ParsedCommand`]) and what the store found
//! and did ([`SmsFacts`]) to the words sent back. Every reply is cut to
//! [`MAX_SEGMENTS`] SMS parts.
//!
//! Language: the sender's, as the command parser read it; except that a
//! bare "1" or "2" (no letter, no Chinese) is answered in the language of
//! the question it answers, i.e. the ticket's, in which the restoration
//! question was sent.
//!
//! Privacy: a ticket's details (type, promised repair time) go only to its
//! own contact number. Anyone else who sends its number learns that it
//! exists and its state, nothing more; a cancel from another number is
//! answered exactly like a cancel of a ticket that does not exist.

use crate::sms::command::{Command, ParsedCommand, TicketRef};
use crate::sms::limits::RateLimit;
use crate::sms::segments;
use crate::tickets::lifecycle::Action;
use crate::tickets::model::{Language, Status, TicketType};
use crate::tickets::notifications::english_name;
use crate::tickets::store::{AnswerFacts, CancelFacts, SmsFacts, Ticket, TicketFacts};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::time::Duration;

/// The most SMS parts a reply may take.
pub const MAX_SEGMENTS: usize = 3;

/// The reply to `parsed`, given what the store found and did; `zone` is
/// the SLA calendar's, for promised times.
pub fn reply(parsed: &ParsedCommand, facts: &SmsFacts, zone: Tz) -> String {
    let language = match facts {
        SmsFacts::Answer(AnswerFacts::Applied(ticket, _)) if parsed.language_is_default => {
            ticket.language
        }
        _ => parsed.language,
    };
    let zh = language == Language::Zh;
    let text = match facts {
        SmsFacts::Ticket(TicketFacts::NotFound) => not_found(zh, &asked_number(&parsed.command)),
        SmsFacts::Ticket(TicketFacts::Own(ticket)) => own_status(zh, ticket, zone),
        SmsFacts::Ticket(TicketFacts::Others(ticket)) => others_status(zh, ticket),
        SmsFacts::OpenTickets(tickets) => open_tickets(zh, tickets),
        SmsFacts::Created(ticket) => created(zh, ticket, zone),
        SmsFacts::Cancel(cancel) => cancelled(zh, cancel),
        SmsFacts::Answer(AnswerFacts::Applied(ticket, action)) => answered(zh, ticket, *action),
        SmsFacts::Answer(AnswerFacts::NoQuestion) => help(zh),
        SmsFacts::Nothing => without_store(zh, &parsed.command),
    };
    segments::fit(&text, MAX_SEGMENTS)
}

/// Replies that need nothing from the store.
fn without_store(zh: bool, command: &Command) -> String {
    match command {
        Command::Status(Some(reference)) | Command::Cancel(reference) => match reference {
            TicketRef::Mistyped(digits) => mistyped(zh, digits),
            TicketRef::Malformed(digits) => malformed(zh, digits),
            // A valid number goes to the store, which always has facts.
            TicketRef::Valid(number) => not_found(zh, &number.to_string()),
        },
        Command::Fault(_) if zh => "请说明故障情况，例如：报障 宽带无法上网".to_string(),
        Command::Fault(_) => {
            "Please say what is wrong, e.g. FAULT no internet since 9am".to_string()
        }
        Command::Complaint(_) if zh => {
            "请说明投诉内容，例如：投诉 维修人员未按约定时间上门".to_string()
        }
        Command::Complaint(_) => {
            "Please say what happened, e.g. COMPLAINT the engineer did not come".to_string()
        }
        Command::CancelWithoutNumber if zh => "取消工单请回复：取消 工单号".to_string(),
        Command::CancelWithoutNumber => {
            "To cancel a ticket, reply CANCEL and its number, e.g. CANCEL 5551234567".to_string()
        }
        Command::Unknown if zh => format!("抱歉，未能识别您的短信。{}", help(zh)),
        Command::Unknown => format!("Sorry, we did not understand that. {}", help(zh)),
        Command::Status(None) | Command::Answer(_) | Command::Help => help(zh),
    }
}

/// The answer to a text refused by a rate limit: which limit, and how many
/// whole minutes (at least one) until the sender may try again.
pub fn rate_limited(zh: bool, limit: RateLimit, wait: Duration) -> String {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    match (limit, zh) {
        (RateLimit::Texts, true) => format!("您发送短信过于频繁，请{minutes}分钟后再试。"),
        (RateLimit::NewTickets, true) => {
            format!("您通过短信提交的报障和投诉过多，请{minutes}分钟后再试，或拨打10000。")
        }
        (RateLimit::Texts, false) => format!(
            "Too many messages from this number. Please try again in {minutes} minute{}.",
            plural(minutes)
        ),
        (RateLimit::NewTickets, false) => format!(
            "Too many new tickets from this number by SMS. Please try again in {minutes} minute{}, or call 10000.",
            plural(minutes)
        ),
    }
}

fn plural(count: u64) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

/// The command reference.
pub fn help(zh: bool) -> String {
    if zh {
        "10000短信服务：查询 工单号——查进度；查询——您未完成的工单；报障 内容——报修；\
         投诉 内容——投诉；取消 工单号——取消工单。English: reply HELP"
            .to_string()
    } else {
        "10000 by SMS: STATUS <ticket> for progress; STATUS for your open tickets; \
         FAULT <text> to report a fault; COMPLAINT <text>; CANCEL <ticket>."
            .to_string()
    }
}

fn mistyped(zh: bool, digits: &str) -> String {
    if zh {
        format!("工单号{digits}似乎输错了（校验位不符），请核对后重发。")
    } else {
        format!("Ticket number {digits} looks mistyped (its check digit is wrong). Please check it and try again.")
    }
}

fn malformed(zh: bool, digits: &str) -> String {
    let count = digits.chars().count();
    if zh {
        format!("工单号为10位数字，您发送的{digits}是{count}位，请核对后重发。")
    } else {
        format!(
            "A ticket number has 10 digits; {digits} has {count}. Please check it and try again."
        )
    }
}

fn not_found(zh: bool, number: &str) -> String {
    if zh {
        format!("未找到工单{number}，请核对工单号。")
    } else {
        format!("No ticket {number} was found. Please check the number.")
    }
}

/// A status in the customer's words.
fn state(zh: bool, status: Status) -> &'static str {
    match (zh, status) {
        (true, Status::New) => "已受理",
        (true, Status::Dispatched) => "已派单",
        (true, Status::Accepted) => "已接单",
        (true, Status::InProgress) => "处理中",
        (true, Status::Resolved) => "已修复，待您确认",
        (true, Status::Confirmed) => "已确认恢复",
        (true, Status::Closed) => "已关闭",
        (true, Status::Cancelled) => "已取消",
        (false, Status::New) => "received",
        (false, Status::Dispatched) => "dispatched",
        (false, Status::Accepted) => "accepted by an engineer",
        (false, Status::InProgress) => "being worked on",
        (false, Status::Resolved) => "resolved, waiting for your confirmation",
        (false, Status::Confirmed) => "confirmed restored",
        (false, Status::Closed) => "closed",
        (false, Status::Cancelled) => "cancelled",
    }
}

fn type_name(zh: bool, ticket_type: TicketType) -> &'static str {
    if zh {
        ticket_type.chinese_name()
    } else {
        english_name(ticket_type)
    }
}

fn promised(zh: bool, due: Option<DateTime<Utc>>, zone: Tz) -> String {
    let Some(due) = due.map(|due| due.with_timezone(&zone)) else {
        return String::new();
    };
    if zh {
        format!("，承诺修复时间{}", due.format("%-m月%-d日%H:%M"))
    } else {
        format!(". Repair promised by {}", due.format("%Y-%m-%d %H:%M"))
    }
}

/// Everything about the sender's own ticket.
fn own_status(zh: bool, ticket: &Ticket, zone: Tz) -> String {
    let open = !matches!(
        ticket.status,
        Status::Resolved | Status::Confirmed | Status::Closed | Status::Cancelled
    );
    let due = if open { ticket.due.repair } else { None };
    let (number, kind) = (ticket.number, type_name(zh, ticket.ticket_type));
    let state = state(zh, ticket.status);
    let promise = promised(zh, due, zone);
    if zh {
        format!("工单{number}（{kind}）：{state}{promise}。")
    } else {
        format!("Ticket {number} ({kind}): {state}{promise}.")
    }
}

/// Someone else's ticket: that it exists and its state, nothing more.
fn others_status(zh: bool, ticket: &Ticket) -> String {
    let (number, state) = (ticket.number, state(zh, ticket.status));
    if zh {
        format!("工单{number}：{state}。详情只发送给该工单的联系号码。")
    } else {
        format!("Ticket {number}: {state}. Details go only to the ticket's contact number.")
    }
}

/// The ticket number a command names, as written.
fn asked_number(command: &Command) -> String {
    match command {
        Command::Status(Some(reference)) | Command::Cancel(reference) => match reference {
            TicketRef::Valid(number) => number.to_string(),
            TicketRef::Mistyped(digits) | TicketRef::Malformed(digits) => digits.clone(),
        },
        _ => String::new(),
    }
}

fn open_tickets(zh: bool, tickets: &[Ticket]) -> String {
    if tickets.is_empty() {
        return if zh {
            "您没有未完成的工单。回复“帮助”查看全部指令。".to_string()
        } else {
            "You have no open tickets. Reply HELP for the commands.".to_string()
        };
    }
    let item = |ticket: &Ticket| format!("{} {}", ticket.number, state(zh, ticket.status));
    let text = |shown: usize| {
        let items: Vec<String> = tickets[..shown].iter().map(item).collect();
        let more = tickets.len() - shown;
        if zh {
            let more = if more > 0 {
                format!("；另有{more}张")
            } else {
                String::new()
            };
            format!("您未完成的工单：{}{more}。", items.join("；"))
        } else {
            let more = if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            };
            format!("Your open tickets: {}{more}.", items.join("; "))
        }
    };
    (1..=tickets.len())
        .rev()
        .map(text)
        .find(|candidate| segments::segments(candidate) <= MAX_SEGMENTS)
        .unwrap_or_else(|| text(1))
}

fn created(zh: bool, ticket: &Ticket, zone: Tz) -> String {
    let number = ticket.number;
    let promise = promised(zh, ticket.due.repair, zone);
    if zh {
        format!(
            "您的{}已受理，工单号{number}{promise}。查询进度请回复：查询 {number}",
            type_name(zh, ticket.ticket_type)
        )
    } else {
        format!(
            "Your {} is ticket {number}{promise}. Reply STATUS {number} for progress.",
            type_name(zh, ticket.ticket_type)
        )
    }
}

fn cancelled(zh: bool, cancel: &CancelFacts) -> String {
    match (cancel, zh) {
        (CancelFacts::NotYours, true) => {
            "未找到您名下的这张工单：只有工单的联系号码可以取消它。".to_string()
        }
        (CancelFacts::NotYours, false) => {
            "No such ticket of yours: only a ticket's contact number can cancel it.".to_string()
        }
        (CancelFacts::Refused(ticket), true) => format!(
            "工单{}{}，无法取消。",
            ticket.number,
            state(zh, ticket.status)
        ),
        (CancelFacts::Refused(ticket), false) => format!(
            "Ticket {} is {} and can no longer be cancelled.",
            ticket.number,
            state(zh, ticket.status)
        ),
        (CancelFacts::Cancelled(ticket), true) => format!("工单{}已取消。", ticket.number),
        (CancelFacts::Cancelled(ticket), false) => {
            format!("Ticket {} is cancelled.", ticket.number)
        }
    }
}

fn answered(zh: bool, ticket: &Ticket, action: Action) -> String {
    let number = ticket.number;
    match (action, zh) {
        (Action::Confirm, true) => format!("感谢您的确认，工单{number}已确认恢复。"),
        (Action::Confirm, false) => format!("Thank you: ticket {number} is confirmed restored."),
        (_, true) => format!("很抱歉故障仍未恢复，工单{number}已重新处理，工程师会再次跟进。"),
        (_, false) => format!(
            "Sorry the service is still not restored: ticket {number} is reopened and an engineer will look again."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::command::parse;
    use crate::tickets::model::{Channel, CustomerLevel};
    use crate::tickets::number::TicketNumber;
    use chrono::TimeZone;

    const ZONE: Tz = chrono_tz::Asia::Shanghai;

    fn ticket(n: u32, status: Status) -> Ticket {
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 2, 0, 0).unwrap();
        let number = TicketNumber::generate(&mut rand::rng());
        Ticket {
            id: i64::from(n),
            number,
            ticket_type: TicketType::FaultReport,
            category: "ict".into(),
            service_number: None,
            description: "宽带断了".into(),
            contact_phone: Some("13800138000".into()),
            customer_id: None,
            level: CustomerLevel::LocalC,
            language: Language::Zh,
            channel: Channel::Sms,
            queue: "fault_report".into(),
            assignee: None,
            status,
            version: 1,
            created_at: at,
            updated_at: at,
            dispatched_at: None,
            accepted_at: None,
            resolved_at: None,
            confirmed_at: None,
            closed_at: None,
            due: crate::tickets::store::Deadlines {
                repair: Some(at + chrono::Duration::hours(24)),
                ..Default::default()
            },
        }
    }

    #[test]
    fn the_own_ticket_has_its_type_state_and_local_repair_time() {
        let own = ticket(1, Status::InProgress);
        let facts = SmsFacts::Ticket(TicketFacts::Own(own.clone()));
        let number = own.number;
        assert_eq!(
            reply(&parse(&format!("查询 {number}")), &facts, ZONE),
            format!("工单{number}（客户报障）：处理中，承诺修复时间12月1日10:00。")
        );
        assert_eq!(
            reply(&parse(&format!("status {number}")), &facts, ZONE),
            format!("Ticket {number} (fault report): being worked on. Repair promised by 2026-12-01 10:00.")
        );
        let done = SmsFacts::Ticket(TicketFacts::Own(ticket(2, Status::Closed)));
        assert!(!reply(&parse("status 1"), &done, ZONE).contains("promised"));
    }

    #[test]
    fn someone_elses_ticket_shows_only_its_state() {
        let other = ticket(1, Status::Dispatched);
        let text = reply(
            &parse("STATUS"),
            &SmsFacts::Ticket(TicketFacts::Others(other.clone())),
            ZONE,
        );
        assert_eq!(
            text,
            format!(
                "Ticket {}: dispatched. Details go only to the ticket's contact number.",
                other.number
            )
        );
    }

    #[test]
    fn a_long_list_of_open_tickets_fits_three_segments() {
        let tickets: Vec<Ticket> = (0..40).map(|n| ticket(n, Status::New)).collect();
        for command in ["STATUS", "查询"] {
            let text = reply(
                &parse(command),
                &SmsFacts::OpenTickets(tickets.clone()),
                ZONE,
            );
            assert!(segments::segments(&text) <= MAX_SEGMENTS, "{text}");
            assert!(text.contains("more") || text.contains("另有"), "{text}");
            assert!(!text.ends_with('…') && !text.ends_with("..."), "{text}");
        }
    }

    #[test]
    fn every_reply_fits_three_segments() {
        let long = ticket(1, Status::New);
        let texts = [
            reply(&parse("hello"), &SmsFacts::Nothing, ZONE),
            reply(&parse("你好"), &SmsFacts::Nothing, ZONE),
            reply(&parse("帮助"), &SmsFacts::Nothing, ZONE),
            reply(&parse("报障 x"), &SmsFacts::Created(long.clone()), ZONE),
            reply(
                &parse("1"),
                &SmsFacts::Answer(AnswerFacts::Applied(Box::new(long), Action::Reopen)),
                ZONE,
            ),
        ];
        for text in texts {
            assert!(segments::segments(&text) <= MAX_SEGMENTS, "{text}");
            assert!(!text.ends_with('…'), "cut: {text}");
        }
    }

    #[test]
    fn a_bare_digit_is_answered_in_the_language_of_the_question() {
        let mut zh_ticket = ticket(1, Status::Confirmed);
        zh_ticket.language = Language::Zh;
        let mut en_ticket = ticket(2, Status::InProgress);
        en_ticket.language = Language::En;
        let applied = |ticket: &Ticket, action| {
            SmsFacts::Answer(AnswerFacts::Applied(Box::new(ticket.clone()), action))
        };
        let zh_number = zh_ticket.number;
        assert_eq!(
            reply(&parse("1"), &applied(&zh_ticket, Action::Confirm), ZONE),
            format!("感谢您的确认，工单{zh_number}已确认恢复。")
        );
        assert!(
            reply(&parse(" 2。"), &applied(&zh_ticket, Action::Reopen), ZONE)
                .starts_with("很抱歉故障仍未恢复")
        );
        assert!(
            reply(&parse("2"), &applied(&en_ticket, Action::Reopen), ZONE)
                .starts_with("Sorry the service is still not restored")
        );
        // Words say which language the sender chose.
        assert!(
            reply(&parse("yes"), &applied(&zh_ticket, Action::Confirm), ZONE)
                .starts_with("Thank you")
        );
        assert!(
            reply(&parse("是"), &applied(&en_ticket, Action::Confirm), ZONE)
                .starts_with("感谢您的确认")
        );
    }

    #[test]
    fn a_rate_limited_sender_is_told_when_to_try_again() {
        let secs = Duration::from_secs;
        assert_eq!(
            rate_limited(true, RateLimit::Texts, secs(5)),
            "您发送短信过于频繁，请1分钟后再试。"
        );
        assert_eq!(
            rate_limited(false, RateLimit::Texts, secs(60)),
            "Too many messages from this number. Please try again in 1 minute."
        );
        assert_eq!(
            rate_limited(false, RateLimit::NewTickets, secs(61)),
            "Too many new tickets from this number by SMS. Please try again in 2 minutes, or call 10000."
        );
        assert_eq!(
            rate_limited(true, RateLimit::NewTickets, secs(719)),
            "您通过短信提交的报障和投诉过多，请12分钟后再试，或拨打10000。"
        );
        for zh in [true, false] {
            for limit in [RateLimit::Texts, RateLimit::NewTickets] {
                let text = rate_limited(zh, limit, secs(3600));
                assert_eq!(segments::segments(&text), 1, "{text}");
            }
        }
    }

    #[test]
    fn no_waiting_question_gets_the_help_text() {
        assert_eq!(
            reply(
                &parse("是"),
                &SmsFacts::Answer(AnswerFacts::NoQuestion),
                ZONE
            ),
            help(true)
        );
        assert_eq!(
            reply(
                &parse("1"),
                &SmsFacts::Answer(AnswerFacts::NoQuestion),
                ZONE
            ),
            help(false)
        );
    }
}
