//! Tickets (工单): what a call or a text becomes, what staff work, and what
//! the customer asks about later. `model`, `number`, `lifecycle`, `sla` and
//! `privacy` (who may hear a ticket's details, in every channel) are pure;
//! `store` owns the database.

pub mod calendar;
pub mod jobs;
pub mod lifecycle;
pub mod model;
pub mod notifications;
pub mod number;
pub mod privacy;
pub mod product_words;
pub mod report;
pub mod sla;
pub mod store;
