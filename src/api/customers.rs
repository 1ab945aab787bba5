//! Customer routes (客户): list, read, create, replace and delete. Every
//! role reads; creating and replacing needs a supervisor; deleting needs
//! an admin, and a customer with tickets is kept (409).

use super::auth::Staff;
use super::calls::limit;
use super::codes::{level_codes, optional_language_codes};
use super::error::{ApiError, ErrorBody};
use super::{ApiJson, ApiQuery, ApiState};
use crate::tickets::model::{Language, StaffRole};
use crate::tickets::store::{Customer, NewCustomer, Product};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

/// A customer as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CustomerView {
    id: i64,
    name: String,
    level: String,
    language: String,
    phones: Vec<String>,
    products: Vec<ProductView>,
    created_at: DateTime<Utc>,
}

/// A product the customer has: its category and line or circuit.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ProductView {
    /// A product category of `sla.toml`.
    #[schema(example = "virtual_network")]
    category: String,
    #[schema(example = "VN-0001")]
    service_number: String,
}

impl From<Customer> for CustomerView {
    fn from(c: Customer) -> CustomerView {
        CustomerView {
            id: c.id,
            name: c.name,
            level: c.level.code().into(),
            language: c.language.code().into(),
            phones: c.phones,
            products: c
                .products
                .into_iter()
                .map(|p| ProductView {
                    category: p.category,
                    service_number: p.service_number,
                })
                .collect(),
            created_at: c.created_at,
        }
    }
}

/// A customer to file, or the new contents of one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CustomerRequest {
    #[schema(example = "某某集团")]
    name: String,
    #[schema(schema_with = level_codes)]
    level: String,
    /// Default: zh.
    #[schema(schema_with = optional_language_codes)]
    language: Option<String>,
    /// At least one; each number belongs to one customer only.
    #[schema(example = json!(["13800138000"]))]
    phones: Vec<String>,
    #[serde(default)]
    products: Vec<ProductView>,
}

impl CustomerRequest {
    fn into_new(self) -> Result<NewCustomer, ApiError> {
        let level = self
            .level
            .parse()
            .map_err(|e: crate::tickets::model::UnknownCode| {
                ApiError::invalid("level", e.to_string())
            })?;
        let language = match self.language {
            None => Language::Zh,
            Some(code) => code
                .parse()
                .map_err(|e: crate::tickets::model::UnknownCode| {
                    ApiError::invalid("language", e.to_string())
                })?,
        };
        Ok(NewCustomer {
            name: self.name,
            level,
            language,
            phones: self.phones,
            products: self
                .products
                .into_iter()
                .map(|p| Product {
                    category: p.category,
                    service_number: p.service_number,
                })
                .collect(),
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct CustomerFilter {
    /// Text contained in the name.
    name: Option<String>,
    /// How many, by id (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// A customer id from the path: a number, or 400.
fn customer_id(text: &str) -> Result<i64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_customer_id",
            format!("{text:?} is not a customer id (a whole number)"),
        )
    })
}

fn not_found(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "customer_not_found",
        format!("no customer {id}"),
    )
}

#[utoipa::path(
    get,
    path = "/api/v1/customers",
    tag = "customers",
    params(CustomerFilter),
    responses(
        (status = 200, description = "Customers by id", body = [CustomerView]),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 422, description = "A bad limit", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list(
    State(state): State<ApiState>,
    _staff: Staff,
    ApiQuery(filter): ApiQuery<CustomerFilter>,
) -> Result<Json<Vec<CustomerView>>, ApiError> {
    let limit = limit(filter.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let customers = state
        .store
        .list_customers(filter.name.as_deref(), limit)
        .await?;
    Ok(Json(customers.into_iter().map(Into::into).collect()))
}

#[utoipa::path(
    post,
    path = "/api/v1/customers",
    tag = "customers",
    request_body = CustomerRequest,
    responses(
        (status = 201, description = "The new customer", body = CustomerView),
        (status = 400, description = "Unreadable JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Needs a supervisor", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A field is missing or wrong, or a phone is another customer's", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn create(
    State(state): State<ApiState>,
    staff: Staff,
    ApiJson(request): ApiJson<CustomerRequest>,
) -> Result<(StatusCode, Json<CustomerView>), ApiError> {
    staff.require(StaffRole::Supervisor)?;
    let customer = state.store.create_customer(request.into_new()?).await?;
    Ok((StatusCode::CREATED, Json(customer.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/customers/{id}",
    tag = "customers",
    params(("id" = i64, Path, description = "The customer's id")),
    responses(
        (status = 200, description = "The customer", body = CustomerView),
        (status = 400, description = "Not a customer id", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such customer", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn show(
    State(state): State<ApiState>,
    _staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<CustomerView>, ApiError> {
    let id = customer_id(&id)?;
    let customer = state
        .store
        .customer(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(customer.into()))
}

#[utoipa::path(
    put,
    path = "/api/v1/customers/{id}",
    tag = "customers",
    params(("id" = i64, Path, description = "The customer's id")),
    request_body = CustomerRequest,
    responses(
        (status = 200, description = "The customer as replaced", body = CustomerView),
        (status = 400, description = "Not a customer id, or unreadable JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Needs a supervisor", body = ErrorBody),
        (status = 404, description = "No such customer", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A field is missing or wrong, or a phone is another customer's", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn update(
    State(state): State<ApiState>,
    staff: Staff,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<CustomerRequest>,
) -> Result<Json<CustomerView>, ApiError> {
    staff.require(StaffRole::Supervisor)?;
    let id = customer_id(&id)?;
    let customer = state
        .store
        .update_customer(id, request.into_new()?)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(customer.into()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/customers/{id}",
    tag = "customers",
    params(("id" = i64, Path, description = "The customer's id")),
    responses(
        (status = 204, description = "Deleted, with their phones and products"),
        (status = 400, description = "Not a customer id", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Needs an admin", body = ErrorBody),
        (status = 404, description = "No such customer", body = ErrorBody),
        (status = 409, description = "The customer has tickets (`customer_has_tickets`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn delete(
    State(state): State<ApiState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    staff.require(StaffRole::Admin)?;
    let id = customer_id(&id)?;
    if state.store.delete_customer(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(id))
    }
}
