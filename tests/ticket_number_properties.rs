//! Property tests for ticket numbers: the Damm check digit catches every
//! single-digit error and every swap of two adjacent different digits, for
//! any valid number.

use hotline::tickets::number::{damm_digit, TicketNumber, TicketNumberError, LENGTH};
use proptest::prelude::*;

/// A valid ticket number from nine arbitrary leading digits.
fn valid_number() -> impl Strategy<Value = Vec<u8>> {
    (1u8..=9, proptest::collection::vec(0u8..=9, LENGTH - 2)).prop_map(|(first, rest)| {
        let mut digits = vec![first];
        digits.extend(rest);
        let check = damm_digit(digits.iter().copied());
        digits.push(check);
        digits
    })
}

fn text(digits: &[u8]) -> String {
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn valid_numbers_parse(digits in valid_number()) {
        prop_assert!(text(&digits).parse::<TicketNumber>().is_ok());
    }

    #[test]
    fn every_single_digit_error_is_caught(digits in valid_number()) {
        for position in 0..LENGTH {
            for replacement in 0..=9u8 {
                if replacement == digits[position] {
                    continue;
                }
                let mut wrong = digits.clone();
                wrong[position] = replacement;
                prop_assert_eq!(
                    text(&wrong).parse::<TicketNumber>(),
                    Err(TicketNumberError::CheckDigit),
                    "{} with digit {} changed to {}", text(&digits), position, replacement
                );
            }
        }
    }

    #[test]
    fn every_adjacent_transposition_is_caught(digits in valid_number()) {
        for position in 0..LENGTH - 1 {
            if digits[position] == digits[position + 1] {
                continue;
            }
            let mut swapped = digits.clone();
            swapped.swap(position, position + 1);
            prop_assert_eq!(
                text(&swapped).parse::<TicketNumber>(),
                Err(TicketNumberError::CheckDigit),
                "{} with digits {} and {} swapped", text(&digits), position, position + 1
            );
        }
    }
}

/// Exhaustively over all 3-digit prefixes: the table itself is weakly
/// totally anti-symmetric, which is what makes the properties above hold.
#[test]
fn the_damm_table_detects_all_errors_on_short_inputs() {
    for a in 0..=9u8 {
        for b in 0..=9u8 {
            for c in 0..=9u8 {
                let check = damm_digit([a, b, c]);
                let valid = [a, b, c, check];
                assert_eq!(damm_digit(valid), 0);
                for position in 0..4 {
                    for replacement in 0..=9u8 {
                        if replacement != valid[position] {
                            let mut wrong = valid;
                            wrong[position] = replacement;
                            assert_ne!(damm_digit(wrong), 0, "{valid:?} -> {wrong:?}");
                        }
                    }
                    if position < 3 && valid[position] != valid[position + 1] {
                        let mut swapped = valid;
                        swapped.swap(position, position + 1);
                        assert_ne!(damm_digit(swapped), 0, "{valid:?} -> {swapped:?}");
                    }
                }
            }
        }
    }
}
