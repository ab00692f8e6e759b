//! How the admin commands show an answer: a table for people (the default), or the JSON
//! the API answered (`--output json`, for scripts).
//!
//! A list (`{"tenants": [...], "next_after": ...}`) becomes one row per item with the
//! item's plain fields as columns; one resource becomes a field/value listing. Nested
//! values are shown as compact JSON, and long cells are cut, so a row stays one line.

use serde_json::Value;

/// What the admin commands print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Output {
    #[default]
    Table,
    Json,
}

const MAX_COLUMNS: usize = 8;
const MAX_CELL: usize = 48;

/// The answer as text in `output` form.
pub fn render(value: &Value, output: Output) -> String {
    match output {
        Output::Json => serde_json::to_string_pretty(value).unwrap_or_default(),
        Output::Table => table(value),
    }
}

fn table(value: &Value) -> String {
    let Value::Object(map) = value else {
        return cell(value);
    };
    let lists: Vec<(&String, &Vec<Value>)> = map
        .iter()
        .filter_map(|(k, v)| v.as_array().map(|a| (k, a)))
        .filter(|(_, a)| a.iter().all(Value::is_object))
        .collect();
    match lists.as_slice() {
        [(name, rows)] => {
            let mut out = rows_table(rows);
            if rows.is_empty() {
                out = format!("(no {name})\n");
            }
            for (key, v) in map.iter().filter(|(k, _)| k != name) {
                if !v.is_null() {
                    out.push_str(&format!("{key}: {}\n", cell(v)));
                }
            }
            out
        }
        _ => fields_table(map),
    }
}

/// A cell: text as is, anything else as compact JSON; at most [`MAX_CELL`] characters.
fn cell(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    if text.chars().count() > MAX_CELL {
        let cut: String = text.chars().take(MAX_CELL - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// Columns that name a row come first, in this order; the others follow by name.
const LEADING: &[&str] = &[
    "id",
    "slug",
    "name",
    "client_id",
    "email",
    "display_name",
    "action",
    "outcome",
    "occurred_at",
    "status",
];

fn rows_table(rows: &[Value]) -> String {
    let mut columns: Vec<&str> = Vec::new();
    for row in rows {
        for (key, value) in row.as_object().into_iter().flatten() {
            let plain = !value.is_object() && !value.is_array();
            if plain && !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    let rank = |c: &str| LEADING.iter().position(|l| *l == c).unwrap_or(LEADING.len());
    columns.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    columns.truncate(MAX_COLUMNS);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| cell(&row[*c])).collect())
        .collect();
    let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    aligned(std::iter::once(header).chain(cells).collect())
}

fn fields_table(map: &serde_json::Map<String, Value>) -> String {
    let rows = map.iter().map(|(key, value)| vec![key.clone(), cell(value)]).collect();
    aligned(rows)
}

/// Columns padded to their widest cell, two spaces apart.
fn aligned(rows: Vec<Vec<String>>) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_list_is_a_table_and_a_resource_a_listing() {
        let list = json!({"tenants": [
            {"slug": "acme", "display_name": "Acme", "settings": {"x": 1}},
            {"slug": "b", "display_name": "A very long display name that goes on and on and on forever"},
        ], "next_after": "b"});
        let text = render(&list, Output::Table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "SLUG  DISPLAY_NAME");
        assert!(lines[1].starts_with("acme  Acme"));
        assert!(lines[2].ends_with('…') && lines[2].chars().count() < 60);
        assert_eq!(lines[3], "next_after: b");
        assert!(!text.contains("settings"), "nested values are not columns");

        let one = json!({"slug": "acme", "reach": {"tenants": ["a"]}, "none": null});
        let text = render(&one, Output::Table);
        assert!(text.contains("slug   acme"), "{text}");
        assert!(text.contains(r#"reach  {"tenants":["a"]}"#), "{text}");
        assert_eq!(render(&json!({"users": []}), Output::Table), "(no users)\n");
        assert_eq!(render(&one, Output::Json), serde_json::to_string_pretty(&one).unwrap());
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let hostile = json!({"name": "evil\u{1b}[2Jname\n"});
        assert!(!render(&hostile, Output::Table).contains('\u{1b}'));
    }
}
