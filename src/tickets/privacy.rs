//! One privacy rule for every channel that tells a customer about a
//! ticket (the voice status branch and the SMS status command): who may
//! hear a ticket's details. Pure.
//!
//! A ticket's **details** (type, category, promised repair time, how many
//! other tickets its contact has) go only to the ticket's own contact
//! number, compared as one phone identity (`crate::phone`), or to a
//! caller an agent vouched for by transferring the call in with the ticket
//! named in the INVITE. Anyone else who knows a ticket's number learns
//! that it exists and its state, nothing more: ticket numbers are 9 random
//! digits and a check digit, and the SMS rate limits and the IVR's retries
//! make guessing them hopeless. A ticket without a contact number shows
//! its details to nobody but a vouched-for caller.

use crate::phone::PhoneNumber;

/// How much of a ticket someone asking about it may learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disclosure {
    /// Everything a status answer says.
    Details,
    /// That it exists, and its state.
    StatusOnly,
}

/// What `asking` (their number as one phone identity, none when unknown)
/// may learn about a ticket whose contact is `ticket_contact` (as stored,
/// in any spelling); `vouched` when an agent vouched for the asker.
pub fn disclosure(
    ticket_contact: Option<&str>,
    asking: Option<&PhoneNumber>,
    vouched: bool,
) -> Disclosure {
    let contact = ticket_contact.and_then(|phone| PhoneNumber::parse(phone).ok());
    let own = matches!((contact, asking), (Some(contact), Some(asking)) if contact == *asking);
    if own || vouched {
        Disclosure::Details
    } else {
        Disclosure::StatusOnly
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(raw: &str) -> PhoneNumber {
        PhoneNumber::parse(raw).unwrap()
    }

    #[test]
    fn the_contact_hears_the_details_in_any_spelling() {
        for stored in ["13800138000", "+8613800138000", "008613800138000"] {
            assert_eq!(
                disclosure(Some(stored), Some(&phone("86 138 0013 8000")), false),
                Disclosure::Details,
                "{stored}"
            );
        }
    }

    #[test]
    fn anyone_else_hears_only_the_state() {
        let contact = Some("13800138000");
        assert_eq!(
            disclosure(contact, Some(&phone("13900139000")), false),
            Disclosure::StatusOnly
        );
        assert_eq!(disclosure(contact, None, false), Disclosure::StatusOnly);
        assert_eq!(
            disclosure(None, Some(&phone("13900139000")), false),
            Disclosure::StatusOnly
        );
        assert_eq!(disclosure(None, None, false), Disclosure::StatusOnly);
    }

    #[test]
    fn a_caller_an_agent_vouched_for_hears_the_details() {
        assert_eq!(
            disclosure(Some("13800138000"), None, true),
            Disclosure::Details
        );
        assert_eq!(disclosure(None, None, true), Disclosure::Details);
    }
}
