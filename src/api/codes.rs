//! The schemas of the API's vocabulary fields (status, level, channel,
//! type, action, language): a string taking one of the codes, taken from
//! the domain types so that the OpenAPI document and the code cannot drift.
//! The request and response types name them in their `schema_with`.

use crate::tickets::lifecycle::Action;
use crate::tickets::model::{Channel, CustomerLevel, Language, Status, TicketType};
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

/// A string schema that takes one of `codes`.
fn codes<'a>(codes: impl IntoIterator<Item = &'a str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(codes))
        .build()
}

/// One of `codes`, or null (an optional field sent as null).
fn optional_codes<'a>(codes: impl IntoIterator<Item = &'a str>) -> Object {
    let values = codes
        .into_iter()
        .map(serde_json::Value::from)
        .chain([serde_json::Value::Null]);
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
        .enum_values(Some(values))
        .build()
}

pub(super) fn optional_level_codes() -> Object {
    optional_codes(CustomerLevel::ALL.iter().map(|l| l.code()))
}

pub(super) fn optional_language_codes() -> Object {
    optional_codes(Language::ALL.iter().map(|l| l.code()))
}

pub(super) fn optional_channel_codes() -> Object {
    optional_codes(Channel::ALL.iter().map(|c| c.code()))
}

pub(super) fn status_codes() -> Object {
    codes(Status::ALL.iter().map(|s| s.code()))
}

pub(super) fn level_codes() -> Object {
    codes(CustomerLevel::ALL.iter().map(|l| l.code()))
}

pub(super) fn channel_codes() -> Object {
    codes(Channel::ALL.iter().map(|c| c.code()))
}

pub(super) fn type_codes() -> Object {
    codes(TicketType::ALL.iter().map(|t| t.code()))
}

pub(super) fn action_codes() -> Object {
    codes(Action::ALL.iter().map(|a| a.code()))
}
