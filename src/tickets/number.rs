//! Ticket numbers (工单号): ten digits that a caller can key in and an agent
//! can read out. Nine are random (the first never 0), so numbers are neither
//! sequential nor guessable; the tenth is a Damm check digit, which catches
//! every single-digit error and every swap of two adjacent digits, so a
//! mistyped number is refused before any lookup.

use rand::Rng;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Digits in a ticket number, the check digit included.
pub const LENGTH: usize = 10;

/// Damm's totally anti-symmetric quasigroup of order 10.
const DAMM: [[u8; 10]; 10] = [
    [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
    [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
    [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
    [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
    [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
    [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
    [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
    [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
    [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
    [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
];

/// The Damm interim digit of `digits` (each 0–9): the check digit to
/// append, or 0 when `digits` already ends in a correct one.
pub fn damm_digit(digits: impl IntoIterator<Item = u8>) -> u8 {
    digits
        .into_iter()
        .fold(0, |interim, digit| DAMM[interim as usize][digit as usize])
}

/// Why a string is not a ticket number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TicketNumberError {
    #[error("a ticket number has {LENGTH} digits, this has {0}")]
    WrongLength(usize),
    #[error("a ticket number has only digits")]
    NotDigits,
    #[error("the check digit does not match: the number looks mistyped")]
    CheckDigit,
}

/// A ticket number whose check digit is correct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TicketNumber([u8; LENGTH]);

impl TicketNumber {
    /// A fresh random number. Uniqueness is the store's job (a unique key,
    /// and a retry on the rare collision).
    pub fn generate(rng: &mut impl Rng) -> TicketNumber {
        let mut digits = [0u8; LENGTH];
        digits[0] = rng.random_range(1..=9);
        for digit in &mut digits[1..LENGTH - 1] {
            *digit = rng.random_range(0..=9);
        }
        digits[LENGTH - 1] = damm_digit(digits[..LENGTH - 1].iter().copied());
        TicketNumber(digits)
    }

    /// The digits, check digit last.
    pub fn digits(&self) -> &[u8; LENGTH] {
        &self.0
    }
}

impl FromStr for TicketNumber {
    type Err = TicketNumberError;

    /// Accepts the ten digits with optional spaces or hyphens between them
    /// (people copy numbers as "123-4567-890").
    fn from_str(text: &str) -> Result<TicketNumber, TicketNumberError> {
        let mut digits = [0u8; LENGTH];
        let mut count = 0;
        for c in text.trim().chars() {
            match c {
                ' ' | '-' => continue,
                '0'..='9' => {
                    if count < LENGTH {
                        digits[count] = c as u8 - b'0';
                    }
                    count += 1;
                }
                _ => return Err(TicketNumberError::NotDigits),
            }
        }
        if count != LENGTH {
            return Err(TicketNumberError::WrongLength(count));
        }
        if damm_digit(digits) != 0 {
            return Err(TicketNumberError::CheckDigit);
        }
        Ok(TicketNumber(digits))
    }
}

impl fmt::Display for TicketNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for digit in self.0 {
            write!(f, "{digit}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damm_matches_the_published_example() {
        // 572 gets check digit 4; 5724 validates to 0.
        assert_eq!(damm_digit([5, 7, 2]), 4);
        assert_eq!(damm_digit([5, 7, 2, 4]), 0);
    }

    #[test]
    fn generated_numbers_parse_back() {
        let mut rng = rand::rng();
        for _ in 0..1000 {
            let number = TicketNumber::generate(&mut rng);
            let text = number.to_string();
            assert_eq!(text.len(), LENGTH);
            assert_ne!(text.as_bytes()[0], b'0');
            assert_eq!(text.parse::<TicketNumber>(), Ok(number));
        }
    }

    #[test]
    fn separators_are_allowed_and_other_characters_are_not() {
        let number = TicketNumber::generate(&mut rand::rng()).to_string();
        let spaced = format!("{}-{} {}", &number[..3], &number[3..7], &number[7..]);
        assert_eq!(
            spaced.parse::<TicketNumber>().map(|n| n.to_string()),
            Ok(number.clone())
        );
        assert_eq!(
            format!("{}x", &number[..9]).parse::<TicketNumber>(),
            Err(TicketNumberError::NotDigits)
        );
        assert_eq!(
            number[..9].parse::<TicketNumber>(),
            Err(TicketNumberError::WrongLength(9))
        );
        assert_eq!(
            format!("{number}1").parse::<TicketNumber>(),
            Err(TicketNumberError::WrongLength(11))
        );
    }

    #[test]
    fn a_changed_check_digit_is_caught() {
        let number = TicketNumber::generate(&mut rand::rng()).to_string();
        let last = number.as_bytes()[LENGTH - 1] - b'0';
        let wrong = format!("{}{}", &number[..9], (last + 1) % 10);
        assert_eq!(
            wrong.parse::<TicketNumber>(),
            Err(TicketNumberError::CheckDigit)
        );
    }
}
