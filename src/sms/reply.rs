//! The reply to an inbound text, in the sender's language: pure functions
//! from what the text asked ([`ParsedCommand`]) and what the store found
//! and did ([`SmsFacts`]) to the words sent back. Every reply is cut to
//! [`MAX_SEGMENTS`] SMS parts.
//!
//! Privacy: a ticket's details (type, promised repair time) go only to its
//! own contact number. Anyone else who sends its number learns that it
//! exists and its state, nothing more; a cancel from another number is
//! answered exactly like a cancel of a ticket that does not exist.

use crate::sms::command::{Command, ParsedCommand, TicketRef};
use crate::sms::segments;
use crate::tickets::lifecycle::Action;
use crate::tickets::model::{Language, Status, TicketType};
use crate::tickets::notifications::english_name;
use crate::tickets::store::{AnswerFacts, CancelFacts, SmsFacts, Ticket, TicketFacts};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The most SMS parts a reply may take.
pub const MAX_SEGMENTS: usize = 3;

/// The reply to `parsed`, given what the store found and did; `zone` is
/// the SLA calendar's, for promised times.
pub fn reply(parsed: &ParsedCommand, facts: &SmsFacts, zone: Tz) -> String {
    let zh = parsed.language == Language::Zh;
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
