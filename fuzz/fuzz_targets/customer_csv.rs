//! A customer CSV as an operator imports it (`hotline customers import`):
//! any text must be read or refused with every problem by line, never
//! panic. What is read has a name, at least one phone number in normal
//! form, no phone twice, products of known categories only, and rows in
//! file order.

#![no_main]

use hotline::tickets::sla::SlaPolicy;
use hotline::tickets::store::parse_customer_csv;
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use std::sync::OnceLock;

/// The shipped policy's categories.
fn known(category: &str) -> bool {
    static POLICY: OnceLock<SlaPolicy> = OnceLock::new();
    POLICY
        .get_or_init(SlaPolicy::builtin)
        .has_category(category)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let customers = match parse_customer_csv(text, known) {
        Ok(customers) => customers,
        Err(error) => {
            assert!(!error.problems.is_empty(), "refused without a reason");
            let _ = error.to_string();
            return;
        }
    };
    let mut phones = HashSet::new();
    let mut last_line = 0;
    for (line, customer) in &customers {
        assert!(*line > last_line, "rows out of order");
        last_line = *line;
        assert!(!customer.name.is_empty());
        assert!(!customer.phones.is_empty());
        for phone in &customer.phones {
            let digits = phone.strip_prefix('+').unwrap_or(phone);
            assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
            assert!(phones.insert(phone.clone()), "{phone} imported twice");
        }
        for product in &customer.products {
            assert!(known(&product.category));
            assert!(!product.service_number.is_empty());
        }
    }
});
