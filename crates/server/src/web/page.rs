//! Pages of the admin API's lists of control-plane records (clients, roles, scopes, API
//! keys, admins): `?limit=` (1–1000, default 100) and `?after=<next_after>`, the key of
//! the last item of the previous page. The records are kept in key order (slug, client
//! id, name or id), so pages follow each other without a gap or a repeat.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;

/// The paging part of a list's query string.
#[derive(Debug, Clone)]
pub struct PageQuery {
    pub limit: usize,
    pub after: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    limit: Option<usize>,
    after: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for PageQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(raw) = Query::<Raw>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::field("query", crate::error::printable(&e.body_text())))?;
        let limit = raw.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::field("limit", "must be between 1 and 1000"));
        }
        Ok(PageQuery {
            limit,
            after: raw.after,
        })
    }
}

impl PageQuery {
    /// The page of `items` (sorted by key) after `self.after`.
    pub fn page<T>(&self, items: impl Iterator<Item = (String, T)>) -> Page<T> {
        let mut page: Vec<(String, T)> = items
            .filter(|(key, _)| self.after.as_ref().is_none_or(|after| key > after))
            .take(self.limit + 1)
            .collect();
        let next_after = (page.len() > self.limit).then(|| {
            page.truncate(self.limit);
            page.last().map(|(key, _)| key.clone())
        });
        Page {
            items: page.into_iter().map(|(_, item)| item).collect(),
            next_after: next_after.flatten(),
        }
    }

    /// The page of `items` (sorted by key) after `self.after`, as `{name: [...],
    /// "next_after": key | null}`.
    pub fn answer<'a, T: serde::Serialize + 'a>(&self, name: &str, items: impl Iterator<Item = (String, T)>) -> Value {
        let Page { items, next_after } = self.page(items);
        json!({ name: items, "next_after": next_after })
    }
}

/// One page of a list, and the key to pass as `after` for the next (`None` on the last).
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_after: Option<String>,
}

/// The `limit` and `after` query parameters of every list, for the API description.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by `PageQuery`; this type only describes it
pub struct PageParams {
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next_after` of the previous page.
    after: Option<String>,
}
