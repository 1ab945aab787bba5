//! Customers (客户): who a phone number belongs to, their level and
//! language, and the products they have. Includes the CSV import, which
//! checks every row before it writes any.
//!
//! CSV columns (a header row is required, in any order):
//! `name,level,language,phones,products`; `phones` separated by `;`;
//! `products` as `category:service_number` pairs separated by `;`.

use super::tickets::{contact_number, contains_pattern};
use super::{parse_code, to_millis, Store, StoreError};
use crate::phone::{search_spellings, PhoneNumber};
use crate::tickets::model::{CustomerLevel, Language};
use crate::tickets::sla::SlaPolicy;
use chrono::{DateTime, Utc};
use sqlx::AnyConnection;
use std::collections::HashMap;
use std::fmt;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub category: String,
    pub service_number: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub id: i64,
    pub name: String,
    pub level: CustomerLevel,
    pub language: Language,
    pub phones: Vec<String>,
    pub products: Vec<Product>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCustomer {
    pub name: String,
    pub level: CustomerLevel,
    pub language: Language,
    pub phones: Vec<String>,
    pub products: Vec<Product>,
}

const MAX_NAME: usize = 200;

impl NewCustomer {
    /// Normalises the phones and checks the rest: a name, at least one
    /// phone number, each once, and products of known categories.
    fn validate(&mut self, sla: &SlaPolicy) -> Result<(), StoreError> {
        self.name = self.name.trim().to_string();
        if self.name.is_empty() || self.name.chars().count() > MAX_NAME {
            return Err(StoreError::Invalid {
                field: "name",
                reason: format!("must have 1 to {MAX_NAME} characters"),
            });
        }
        if self.phones.is_empty() {
            return Err(StoreError::Invalid {
                field: "phones",
                reason: "a customer needs at least one phone number".into(),
            });
        }
        let mut seen = Vec::with_capacity(self.phones.len());
        for phone in &self.phones {
            let phone = contact_number("phones", phone)?;
            if seen.contains(&phone) {
                return Err(StoreError::Invalid {
                    field: "phones",
                    reason: format!("{phone} is listed twice"),
                });
            }
            seen.push(phone);
        }
        self.phones = seen;
        for product in &mut self.products {
            product.service_number = product.service_number.trim().to_string();
            if !sla.has_category(&product.category) {
                return Err(StoreError::Invalid {
                    field: "products",
                    reason: format!(
                        "unknown product category {:?} (known: {})",
                        product.category,
                        sla.categories().join(", ")
                    ),
                });
            }
            if product.service_number.is_empty() {
                return Err(StoreError::Invalid {
                    field: "products",
                    reason: "a product needs its service number".into(),
                });
            }
        }
        Ok(())
    }
}

/// Every bad row of an import, by line number; nothing was imported.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct CustomerImportError {
    pub problems: Vec<(u64, String)>,
}

impl fmt::Display for CustomerImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} bad row(s); nothing was imported:",
            self.problems.len()
        )?;
        for (line, reason) in &self.problems {
            writeln!(f, "  line {line}: {reason}")?;
        }
        Ok(())
    }
}

const COLUMNS: [&str; 5] = ["name", "level", "language", "phones", "products"];

/// Parses and checks a customer CSV. `known_category` says whether a
/// product category exists. Returns the customers with the line each came
/// from, or every problem found.
pub fn parse_customer_csv(
    text: &str,
    known_category: impl Fn(&str) -> bool,
) -> Result<Vec<(u64, NewCustomer)>, CustomerImportError> {
    let mut problems = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_ascii_lowercase).collect(),
        Err(e) => {
            return Err(CustomerImportError {
                problems: vec![(1, format!("cannot read the header: {e}"))],
            })
        }
    };
    let position: HashMap<&str, usize> = COLUMNS
        .iter()
        .filter_map(|c| header.iter().position(|h| h == c).map(|i| (*c, i)))
        .collect();
    let missing: Vec<_> = COLUMNS
        .iter()
        .filter(|c| !position.contains_key(*c))
        .collect();
    if !missing.is_empty() {
        return Err(CustomerImportError {
            problems: vec![(
                1,
                format!(
                    "the header lacks column(s) {}; expected {}",
                    missing
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    COLUMNS.join(",")
                ),
            )],
        });
    }
    let mut customers = Vec::new();
    let mut seen_phones: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                problems.push((line, e.to_string()));
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let field = |name: &str| record.get(position[name]).unwrap_or("");
        let mut row_problems = Vec::new();
        let name = field("name").to_string();
        if name.is_empty() {
            row_problems.push("name is empty".to_string());
        }
        let level = field("level").parse::<CustomerLevel>();
        if let Err(e) = &level {
            row_problems.push(e.to_string());
        }
        let language = field("language").parse::<Language>();
        if let Err(e) = &language {
            row_problems.push(e.to_string());
        }
        let mut phones = Vec::new();
        for phone in field("phones")
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            match PhoneNumber::contact(phone) {
                Err(e) => row_problems.push(e.to_string()),
                Ok(phone) => {
                    let phone = phone.to_string();
                    if let Some(first) = seen_phones.get(&phone) {
                        row_problems.push(format!("phone {phone} is also on line {first}"));
                    } else {
                        seen_phones.insert(phone.clone(), line);
                        phones.push(phone);
                    }
                }
            }
        }
        // Separators alone (";") list no number either.
        if field("phones").split(';').all(|p| p.trim().is_empty()) {
            row_problems.push("no phone number".to_string());
        }
        let mut products = Vec::new();
        for item in field("products")
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            match item.split_once(':') {
                Some((category, service)) if !service.trim().is_empty() => {
                    let category = category.trim();
                    if known_category(category) {
                        products.push(Product {
                            category: category.to_string(),
                            service_number: service.trim().to_string(),
                        });
                    } else {
                        row_problems.push(format!("unknown product category {category:?}"));
                    }
                }
                _ => row_problems.push(format!("product {item:?} is not category:service_number")),
            }
        }
        match (level, language) {
            (Ok(level), Ok(language)) if row_problems.is_empty() => customers.push((
                line,
                NewCustomer {
                    name,
                    level,
                    language,
                    phones,
                    products,
                },
            )),
            _ => problems.extend(row_problems.into_iter().map(|p| (line, p))),
        }
    }
    if problems.is_empty() {
        Ok(customers)
    } else {
        Err(CustomerImportError { problems })
    }
}

impl Store {
    /// Adds a customer; a phone number already on file is refused.
    pub async fn create_customer(&self, mut customer: NewCustomer) -> Result<Customer, StoreError> {
        customer.validate(self.sla())?;
        let now = self.now();
        self.write(move |conn| Box::pin(async move { insert_customer(conn, customer, now).await }))
            .await
    }

    pub async fn customer(&self, id: i64) -> Result<Option<Customer>, StoreError> {
        let row: Option<(i64, String, String, String, i64)> = sqlx::query_as(
            "SELECT id, name, level, language, created_at FROM customers WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        let Some((id, name, level, language, created_at)) = row else {
            return Ok(None);
        };
        let phones: Vec<String> = sqlx::query_scalar(
            "SELECT phone FROM customer_phones WHERE customer_id = $1 ORDER BY phone",
        )
        .bind(id)
        .fetch_all(self.reader())
        .await?;
        let products: Vec<(String, String)> = sqlx::query_as(
            "SELECT category, service_number FROM customer_products WHERE customer_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.reader())
        .await?;
        Ok(Some(Customer {
            id,
            name,
            level: parse_code(&level)?,
            language: parse_code(&language)?,
            phones,
            products: products
                .into_iter()
                .map(|(category, service_number)| Product {
                    category,
                    service_number,
                })
                .collect(),
            created_at: super::from_millis(created_at)?,
        }))
    }

    /// Customers whose name contains `name` (all without), by id, at most
    /// `limit` (1 to 1000).
    pub async fn list_customers(
        &self,
        name: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Customer>, StoreError> {
        let pattern = contains_pattern(name.unwrap_or_default());
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM customers WHERE name LIKE $1 ESCAPE '\\' ORDER BY id LIMIT $2",
        )
        .bind(pattern)
        .bind(limit.clamp(1, 1000))
        .fetch_all(self.reader())
        .await?;
        let mut customers = Vec::with_capacity(ids.len());
        for id in ids {
            // A customer deleted meanwhile is simply not listed.
            if let Some(customer) = self.customer(id).await? {
                customers.push(customer);
            }
        }
        Ok(customers)
    }

    /// Replaces a customer's name, level, language, phones and products;
    /// `None` when there is no such customer.
    pub async fn update_customer(
        &self,
        id: i64,
        mut customer: NewCustomer,
    ) -> Result<Option<Customer>, StoreError> {
        customer.validate(self.sla())?;
        let now = self.now();
        self.write(move |conn| {
            Box::pin(async move {
                let created_at: Option<i64> =
                    sqlx::query_scalar("SELECT created_at FROM customers WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *conn)
                        .await?;
                let Some(created_at) = created_at else {
                    return Ok(None);
                };
                sqlx::query(
                    "UPDATE customers SET name = $1, level = $2, language = $3, updated_at = $4 \
                     WHERE id = $5",
                )
                .bind(&customer.name)
                .bind(customer.level.code())
                .bind(customer.language.code())
                .bind(to_millis(now))
                .bind(id)
                .execute(&mut *conn)
                .await?;
                delete_phones_and_products(conn, id).await?;
                insert_phones_and_products(conn, id, &customer).await?;
                Ok(Some(Customer {
                    id,
                    name: customer.name,
                    level: customer.level,
                    language: customer.language,
                    phones: customer.phones,
                    products: customer.products,
                    created_at: super::from_millis(created_at)?,
                }))
            })
        })
        .await
    }

    /// Deletes a customer with their phones and products; `false` when
    /// there is no such customer. A customer with tickets is kept
    /// ([`StoreError::CustomerHasTickets`]): the tickets' history needs it.
    pub async fn delete_customer(&self, id: i64) -> Result<bool, StoreError> {
        self.write(move |conn| {
            Box::pin(async move {
                let tickets: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM tickets WHERE customer_id = $1")
                        .bind(id)
                        .fetch_one(&mut *conn)
                        .await?;
                if tickets > 0 {
                    return Err(StoreError::CustomerHasTickets { id, tickets });
                }
                delete_phones_and_products(conn, id).await?;
                let deleted = sqlx::query("DELETE FROM customers WHERE id = $1")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                Ok(deleted.rows_affected() > 0)
            })
        })
        .await
    }

    /// The customer on file under any spelling of `phone`.
    pub async fn customer_by_phone(&self, phone: &str) -> Result<Option<Customer>, StoreError> {
        match customer_by_spellings(self.reader(), phone).await? {
            Some((id, _, _)) => self.customer(id).await,
            None => Ok(None),
        }
    }

    /// Imports a customer CSV: every row is checked first (format, and
    /// phones already on file), and if any is bad nothing is imported.
    /// Returns how many customers were added.
    pub async fn import_customers(&self, csv_text: &str) -> Result<usize, StoreError> {
        let sla = self.inner.sla.clone();
        let customers = parse_customer_csv(csv_text, |c| sla.has_category(c))?;
        let now = self.now();
        self.write(move |conn| {
            Box::pin(async move {
                let mut problems = Vec::new();
                for (line, customer) in &customers {
                    for phone in &customer.phones {
                        if let Some(owner) = phone_owner(conn, phone).await? {
                            problems.push((
                                *line,
                                format!("phone {phone} already belongs to customer {owner}"),
                            ));
                        }
                    }
                }
                if !problems.is_empty() {
                    return Err(CustomerImportError { problems }.into());
                }
                let count = customers.len();
                for (_, customer) in customers {
                    insert_customer(conn, customer, now).await?;
                }
                Ok(count)
            })
        })
        .await
    }
}

async fn insert_customer(
    conn: &mut AnyConnection,
    customer: NewCustomer,
    now: DateTime<Utc>,
) -> Result<Customer, StoreError> {
    if customer.name.trim().is_empty() || customer.phones.is_empty() {
        return Err(StoreError::Invalid {
            field: "customer",
            reason: "a customer needs a name and at least one phone number".into(),
        });
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO customers (name, level, language, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4) RETURNING id",
    )
    .bind(&customer.name)
    .bind(customer.level.code())
    .bind(customer.language.code())
    .bind(to_millis(now))
    .fetch_one(&mut *conn)
    .await?;
    let phones = insert_phones_and_products(conn, id, &customer).await?;
    Ok(Customer {
        id,
        name: customer.name,
        level: customer.level,
        language: customer.language,
        phones,
        products: customer.products,
        created_at: now,
    })
}

/// Files the customer's phones (refusing one that is another customer's)
/// and products; returns the phones as stored.
async fn insert_phones_and_products(
    conn: &mut AnyConnection,
    id: i64,
    customer: &NewCustomer,
) -> Result<Vec<String>, StoreError> {
    let mut phones = Vec::new();
    for phone in &customer.phones {
        let phone = contact_number("phones", phone)?;
        if let Some(owner) = phone_owner(conn, &phone).await? {
            return Err(StoreError::Invalid {
                field: "phones",
                reason: format!("phone {phone} already belongs to customer {owner}"),
            });
        }
        sqlx::query("INSERT INTO customer_phones (phone, customer_id) VALUES ($1, $2)")
            .bind(&phone)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        phones.push(phone);
    }
    for product in &customer.products {
        sqlx::query(
            "INSERT INTO customer_products (customer_id, category, service_number) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(&product.category)
        .bind(&product.service_number)
        .execute(&mut *conn)
        .await?;
    }
    Ok(phones)
}

/// The customer on file under any spelling of `phone` (the lowest id where
/// older rows file it under several): id, level and language.
pub(super) async fn customer_by_spellings(
    reader: &sqlx::AnyPool,
    phone: &str,
) -> Result<Option<(i64, String, String)>, StoreError> {
    let spellings = search_spellings(phone);
    if spellings.is_empty() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT c.id, c.level, c.language FROM customer_phones p \
         JOIN customers c ON c.id = p.customer_id WHERE p.phone IN ({}) ORDER BY c.id LIMIT 1",
        super::parameters(1, spellings.len())
    );
    let mut select = sqlx::query_as(&sql);
    for spelling in spellings {
        select = select.bind(spelling);
    }
    Ok(select.fetch_optional(reader).await?)
}

/// Whose phone `phone` (normal form) is, under any of its spellings.
async fn phone_owner(conn: &mut AnyConnection, phone: &str) -> Result<Option<i64>, StoreError> {
    let spellings = search_spellings(phone);
    if spellings.is_empty() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT customer_id FROM customer_phones WHERE phone IN ({}) ORDER BY customer_id LIMIT 1",
        super::parameters(1, spellings.len())
    );
    let mut select = sqlx::query_scalar(&sql);
    for spelling in spellings {
        select = select.bind(spelling);
    }
    Ok(select.fetch_optional(&mut *conn).await?)
}

async fn delete_phones_and_products(conn: &mut AnyConnection, id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM customer_phones WHERE customer_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM customer_products WHERE customer_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(category: &str) -> bool {
        ["bandwidth", "virtual_network"].contains(&category)
    }

    #[test]
    fn a_good_file_parses_with_line_numbers() {
        let text = "name,level,language,phones,products\n\
                    某某集团,集团级,zh,13800138000;010-12345678,bandwidth:MSTP-001\n\
                    Acme,local_c,en,+8613900139000,\n";
        let customers = parse_customer_csv(text, known).unwrap();
        assert_eq!(customers.len(), 2);
        assert_eq!(customers[0].0, 2);
        assert_eq!(customers[0].1.level, CustomerLevel::Group);
        assert_eq!(customers[0].1.phones, ["13800138000", "01012345678"]);
        assert_eq!(customers[0].1.products[0].service_number, "MSTP-001");
        assert_eq!(customers[1].1.language, Language::En);
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let text = "name,level,language,phones,products\n\
                    ok,local_a,zh,13800138000,\n\
                    ,vip,fr,13800138000,fibre:1\n\
                    x,local_b,zh,abc,bandwidth\n";
        let error = parse_customer_csv(text, known).unwrap_err();
        let lines: Vec<u64> = error.problems.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [3, 3, 3, 3, 3, 4, 4]);
        let text = error.to_string();
        assert!(text.contains("line 3: name is empty"), "{text}");
        assert!(
            text.contains("line 3: unknown customer level \"vip\""),
            "{text}"
        );
        assert!(
            text.contains("line 3: phone 13800138000 is also on line 2"),
            "{text}"
        );
        assert!(
            text.contains("line 3: unknown product category \"fibre\""),
            "{text}"
        );
        assert!(
            text.contains("line 4: \"abc\" is not a phone number"),
            "{text}"
        );
        assert!(
            text.contains("line 4: product \"bandwidth\" is not category:service_number"),
            "{text}"
        );
    }

    #[test]
    fn a_phone_list_of_separators_alone_is_no_phone_number() {
        // Found by the customer_csv fuzz target: the row was read with no
        // phone at all, and the import then failed without a line number.
        let text = "name,level,language,phones,products\nx,group,zh,;,\ny,group,zh, ; ;,\n";
        let error = parse_customer_csv(text, known).unwrap_err();
        assert_eq!(
            error.problems,
            [
                (2, "no phone number".to_string()),
                (3, "no phone number".to_string())
            ]
        );
    }

    #[test]
    fn a_missing_column_is_named() {
        let error = parse_customer_csv("name,level\nx,local_a\n", known).unwrap_err();
        assert!(
            error.to_string().contains("language, phones, products"),
            "{error}"
        );
    }
}
