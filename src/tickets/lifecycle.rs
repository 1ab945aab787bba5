//! The work-order lifecycle as a pure state machine: which action is allowed
//! in which status, and where it leads. The store applies it inside the same
//! transaction that writes the change and its event.
//!
//! ```text
//! new → dispatched → accepted → in_progress → resolved → confirmed → closed
//!                               ↑   (reopen)  ┘            │
//!                               └──────────────────────────┘
//! cancel: from new, dispatched, accepted or in_progress
//! ```
//! A reopened ticket goes back to `in_progress` with its assignee: the fault
//! came back, and whoever fixed it is the first to look again.

use super::model::Status;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Something done to a ticket that changes its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Dispatch,
    Accept,
    Start,
    Resolve,
    Confirm,
    Close,
    Reopen,
    Cancel,
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Action::Dispatch,
        Action::Accept,
        Action::Start,
        Action::Resolve,
        Action::Confirm,
        Action::Close,
        Action::Reopen,
        Action::Cancel,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Action::Dispatch => "dispatch",
            Action::Accept => "accept",
            Action::Start => "start",
            Action::Resolve => "resolve",
            Action::Confirm => "confirm",
            Action::Close => "close",
            Action::Reopen => "reopen",
            Action::Cancel => "cancel",
        }
    }

    /// The statuses this action may start from, and where it leads.
    fn rule(self) -> (&'static [Status], Status) {
        use Status::*;
        match self {
            Action::Dispatch => (&[New], Dispatched),
            Action::Accept => (&[Dispatched], Accepted),
            Action::Start => (&[Accepted], InProgress),
            Action::Resolve => (&[Accepted, InProgress], Resolved),
            Action::Confirm => (&[Resolved], Confirmed),
            Action::Close => (&[Confirmed], Closed),
            Action::Reopen => (&[Resolved, Confirmed], InProgress),
            Action::Cancel => (&[New, Dispatched, Accepted, InProgress], Cancelled),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(text: &str) -> Result<Action, String> {
        Action::ALL
            .iter()
            .copied()
            .find(|a| a.code() == text)
            .ok_or_else(|| {
                let known: Vec<_> = Action::ALL.iter().map(|a| a.code()).collect();
                format!(
                    "unknown action \"{text}\" (expected one of: {})",
                    known.join(", ")
                )
            })
    }
}

/// An action that the ticket's status does not allow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cannot {action} a ticket that is {status}; {}", allowed_text(.status))]
pub struct TransitionError {
    pub action: Action,
    pub status: Status,
}

fn allowed_text(status: &Status) -> String {
    let allowed = allowed_actions(*status);
    if allowed.is_empty() {
        format!("{status} is final")
    } else {
        let names: Vec<_> = allowed.iter().map(|a| a.code()).collect();
        format!(
            "from {status} the allowed actions are: {}",
            names.join(", ")
        )
    }
}

/// The status after `action`, or why it is not allowed.
pub fn apply(status: Status, action: Action) -> Result<Status, TransitionError> {
    let (from, to) = action.rule();
    if from.contains(&status) {
        Ok(to)
    } else {
        Err(TransitionError { action, status })
    }
}

/// The actions allowed in `status`, in lifecycle order.
pub fn allowed_actions(status: Status) -> Vec<Action> {
    Action::ALL
        .iter()
        .copied()
        .filter(|a| a.rule().0.contains(&status))
        .collect()
}

/// Whether a ticket in `status` still needs work (for "my open tickets").
pub fn is_open(status: Status) -> bool {
    !matches!(
        status,
        Status::Resolved | Status::Confirmed | Status::Closed | Status::Cancelled
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn the_happy_path_walks_every_stage() {
        let path = [
            (Action::Dispatch, Dispatched),
            (Action::Accept, Accepted),
            (Action::Start, InProgress),
            (Action::Resolve, Resolved),
            (Action::Confirm, Confirmed),
            (Action::Close, Closed),
        ];
        let mut status = New;
        for (action, expected) in path {
            status = apply(status, action).unwrap();
            assert_eq!(status, expected);
        }
        assert!(allowed_actions(Closed).is_empty());
    }

    #[test]
    fn reopen_goes_back_to_work_from_resolved_or_confirmed() {
        assert_eq!(apply(Resolved, Action::Reopen), Ok(InProgress));
        assert_eq!(apply(Confirmed, Action::Reopen), Ok(InProgress));
        assert!(apply(Closed, Action::Reopen).is_err());
        assert!(apply(InProgress, Action::Reopen).is_err());
    }

    #[test]
    fn cancel_only_while_work_is_pending() {
        for status in [New, Dispatched, Accepted, InProgress] {
            assert_eq!(apply(status, Action::Cancel), Ok(Cancelled));
        }
        for status in [Resolved, Confirmed, Closed, Cancelled] {
            assert!(apply(status, Action::Cancel).is_err());
        }
    }

    #[test]
    fn the_error_names_the_state_and_the_allowed_actions() {
        let error = apply(New, Action::Resolve).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot resolve a ticket that is new; from new the allowed actions are: dispatch, cancel"
        );
        let error = apply(Closed, Action::Cancel).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot cancel a ticket that is closed; closed is final"
        );
    }

    #[test]
    fn every_status_except_the_final_ones_has_a_way_forward() {
        for status in Status::ALL {
            let finals = matches!(status, Closed | Cancelled);
            assert_eq!(allowed_actions(*status).is_empty(), finals, "{status}");
        }
    }
}
