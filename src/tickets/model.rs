//! The ticket domain's vocabulary: customer levels, ticket types, channels,
//! statuses and who acted. Each has a stable storage code (ASCII, used in
//! the database, config files and the API) and the Chinese name operators
//! use. Nothing here touches the database or the clock.

use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A value that is not one of a vocabulary's codes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {kind} \"{value}\" (expected one of: {expected})")]
pub struct UnknownCode {
    pub kind: &'static str,
    pub value: String,
    pub expected: String,
}

/// Declares a vocabulary enum with its storage codes and display names.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $kind:literal {
        $($(#[$vmeta:meta])* $variant:ident = $code:literal, $zh:literal;)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stable code stored in the database and used in files.
            pub fn code(self) -> &'static str {
                match self {
                    $($name::$variant => $code,)+
                }
            }

            /// The Chinese name staff know it by.
            pub fn chinese_name(self) -> &'static str {
                match self {
                    $($name::$variant => $zh,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownCode;

            fn from_str(value: &str) -> Result<Self, UnknownCode> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.code() == value || v.chinese_name() == value)
                    .ok_or_else(|| UnknownCode {
                        kind: $kind,
                        value: value.to_string(),
                        expected: $name::ALL.iter().map(|v| v.code()).collect::<Vec<_>>().join(", "),
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }

        /// Read from files (dialplans, config) by code or Chinese name.
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

vocabulary! {
    /// 客户等级: drives repair deadlines and routing priority.
    CustomerLevel, "customer level" {
        /// 集团级
        Group = "group", "集团级";
        /// 省级
        Provincial = "provincial", "省级";
        /// 本地A: flagship-brand and key industry customers.
        LocalA = "local_a", "本地A";
        LocalB = "local_b", "本地B";
        /// 本地C: ordinary customers, and anyone not on file.
        LocalC = "local_c", "本地C";
    }
}

vocabulary! {
    /// What the customer asked for.
    TicketType, "ticket type" {
        FaultReport = "fault_report", "客户报障";
        Complaint = "complaint", "投诉";
        Consultation = "consultation", "业务咨询";
        NewInstallation = "new_installation", "新装";
        Change = "change", "产品变更";
        ScheduledCancellation = "scheduled_cancellation", "预约销户";
        Cancellation = "cancellation", "销户";
        TerminalRepair = "terminal_repair", "终端维修";
    }
}

vocabulary! {
    /// Where the ticket came from.
    Channel, "channel" {
        Voice = "voice", "语音";
        Sms = "sms", "短信";
        Staff = "staff", "人工";
        Api = "api", "接口";
    }
}

vocabulary! {
    /// The work-order state (see `lifecycle`).
    Status, "status" {
        New = "new", "新建";
        Dispatched = "dispatched", "已派单";
        Accepted = "accepted", "已接单";
        InProgress = "in_progress", "处理中";
        Resolved = "resolved", "已修复";
        Confirmed = "confirmed", "已确认";
        Closed = "closed", "已关闭";
        Cancelled = "cancelled", "已取消";
    }
}

vocabulary! {
    /// The language a customer is answered in.
    Language, "language" {
        Zh = "zh", "中文";
        En = "en", "English";
    }
}

vocabulary! {
    /// The kind of party that acted on a ticket.
    ActorKind, "actor kind" {
        Customer = "customer", "客户";
        Staff = "staff", "客服";
        System = "system", "系统";
    }
}

vocabulary! {
    /// What a staff API token may do, in increasing order of power (see
    /// `api::auth`): agents work tickets, supervisors also hand them out,
    /// open them and keep the customer file, admins also delete customers.
    StaffRole, "role" {
        /// 客服代表
        Agent = "agent", "客服代表";
        /// 班长
        Supervisor = "supervisor", "班长";
        Admin = "admin", "管理员";
    }
}

/// Who did something to a ticket: a customer (by phone number), a staff
/// user (by login), or the system (by job name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
}

impl Actor {
    pub fn customer(phone: impl Into<String>) -> Actor {
        Actor {
            kind: ActorKind::Customer,
            id: phone.into(),
        }
    }

    pub fn staff(login: impl Into<String>) -> Actor {
        Actor {
            kind: ActorKind::Staff,
            id: login.into(),
        }
    }

    pub fn system(job: impl Into<String>) -> Actor {
        Actor {
            kind: ActorKind::System,
            id: job.into(),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_chinese_names_both_parse() {
        assert_eq!(
            "local_a".parse::<CustomerLevel>(),
            Ok(CustomerLevel::LocalA)
        );
        assert_eq!("集团级".parse::<CustomerLevel>(), Ok(CustomerLevel::Group));
        assert_eq!("投诉".parse::<TicketType>(), Ok(TicketType::Complaint));
        for status in Status::ALL {
            assert_eq!(status.code().parse::<Status>(), Ok(*status));
        }
    }

    #[test]
    fn unknown_code_lists_the_expected_ones() {
        let error = "vip".parse::<CustomerLevel>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown customer level \"vip\" (expected one of: group, provincial, local_a, local_b, local_c)"
        );
    }
}
