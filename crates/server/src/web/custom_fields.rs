//! A tenant's custom user fields on the hosted forms (the sign-up page and the account
//! page): one input per field, and the posted values as the store takes them. Inputs are
//! named `custom.{field}`.

use std::collections::BTreeMap;

use serde_json::Value;
use tenantry_controlplane::model::CustomFieldType;
use tenantry_oidc::params::Params;
use tenantry_tenancy::TenantContext;

use crate::error::ApiError;
use crate::pages::CustomFieldInput;

/// The longest value a hosted form keeps of one field (characters).
pub const MAX_FIELD: usize = 1024;

/// One input per custom field of the tenant, each showing `value_of(field name)`.
pub fn inputs(ctx: &TenantContext, value_of: impl Fn(&str) -> String) -> Vec<CustomFieldInput> {
    ctx.entry
        .tenant
        .settings
        .custom_fields
        .iter()
        .map(|f| CustomFieldInput {
            name: f.name.clone(),
            label: label(&f.name),
            input: match f.field_type {
                CustomFieldType::Text => "text",
                CustomFieldType::Integer => "number",
                CustomFieldType::Boolean => "checkbox",
                CustomFieldType::Date => "date",
                CustomFieldType::Timestamp => "datetime-local",
            },
            required: f.required,
            value: value_of(&f.name),
        })
        .collect()
}

/// A stored value as its input shows it: text as is, a checkbox `1` when true, a
/// timestamp as `datetime-local` (`YYYY-MM-DDTHH:MM`, UTC).
pub fn shown(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) if s.len() >= 16 && s.as_bytes().get(10) == Some(&b'T') => s[..16].to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(true)) => "1".to_owned(),
        Some(Value::Bool(false)) | None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A custom field's label: its name with spaces, capitalised (`cost_center` → "Cost center").
fn label(name: &str) -> String {
    let spaced = name.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => spaced,
    }
}

/// The tenant's custom fields from a posted form, as the values the store takes: text and
/// dates as sent, integers parsed, booleans from checkboxes, `datetime-local` as UTC.
/// Empty inputs are left out (the store refuses a missing required field).
pub fn values(ctx: &TenantContext, params: &Params) -> Result<BTreeMap<String, Value>, ApiError> {
    let mut values = BTreeMap::new();
    for field in &ctx.entry.tenant.settings.custom_fields {
        let key = format!("custom.{}", field.name);
        let raw = params.get(&key).map(str::trim).unwrap_or("");
        let value = match field.field_type {
            CustomFieldType::Boolean => Value::Bool(raw == "1"),
            _ if raw.is_empty() => continue,
            CustomFieldType::Integer => match raw.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => return Err(ApiError::field(&key, "must be a whole number")),
            },
            CustomFieldType::Timestamp if raw.len() == 16 => Value::String(format!("{raw}:00Z")),
            CustomFieldType::Timestamp if raw.len() == 19 => Value::String(format!("{raw}Z")),
            _ => Value::String(raw.chars().take(MAX_FIELD).collect()),
        };
        values.insert(field.name.clone(), value);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_as_words() {
        assert_eq!(label("cost_center"), "Cost center");
        assert_eq!(label("x"), "X");
        assert_eq!(label(""), "");
    }

    #[test]
    fn stored_values_show_as_their_inputs_take_them() {
        assert_eq!(shown(Some(&Value::from("2026-12-02T10:30:00Z"))), "2026-12-02T10:30");
        assert_eq!(shown(Some(&Value::from("2026-12-02"))), "2026-12-02");
        assert_eq!(shown(Some(&Value::Bool(true))), "1");
        assert_eq!(shown(Some(&Value::Bool(false))), "");
        assert_eq!(shown(Some(&Value::from(42))), "42");
        assert_eq!(shown(None), "");
    }
}
