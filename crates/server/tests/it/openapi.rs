//! `/openapi.json`: an OpenAPI 3.1 document that describes every admin and `/v1/auth`
//! route the server has (no more, no fewer), with the problem+json error body and the
//! whole error catalogue. Schemathesis checks the answers against it (`.ci/schemathesis`).

use std::collections::BTreeSet;

use serde_json::Value;
use tenantry_server::error::ErrorCode;

use crate::admin_access::ROUTES;
use crate::common::start;

/// The `/v1/auth` routes, read from their module like the admin routes are.
const AUTH_API_SOURCE: &str = include_str!("../../src/routes/auth_api/mod.rs");
const ADMIN_AUTH_SOURCE: &str = include_str!("../../src/routes/admin_auth.rs");
const API_SOURCE: &str = include_str!("../../src/routes/api.rs");

/// (method, path) of every `.route("path", get(..).post(..))` in `source`.
fn routes_in(source: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (at, _) in source.match_indices(".route(") {
        let rest = &source[at + ".route(".len()..];
        let path_start = rest.find('"').unwrap() + 1;
        let path = &rest[path_start..path_start + rest[path_start..].find('"').unwrap()];
        // The method router runs to the closing parenthesis of `.route(`.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .unwrap()
            .0;
        let methods = &rest[path_start + path.len()..end];
        for method in ["get", "post", "put", "patch", "delete"] {
            if methods.contains(&format!("{method}(")) {
                found.push((method.to_uppercase(), path.to_owned()));
            }
        }
    }
    found
}

#[tokio::test]
async fn the_document_describes_every_route_and_only_routes() {
    let server = start().await;
    let response = server
        .http
        .get(format!("{}/openapi.json", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let doc: Value = response.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );

    let mut routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    routes.extend(routes_in(AUTH_API_SOURCE));
    routes.extend(routes_in(ADMIN_AUTH_SOURCE));
    routes.extend(routes_in(API_SOURCE));
    assert!(routes.len() >= 90, "the scan finds the routes ({})", routes.len());

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            documented.insert((method.to_uppercase(), path.clone()));
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|status| status.starts_with('2')),
                "{method} {path} documents its success"
            );
            assert!(responses.contains_key("4XX"), "{method} {path} documents its errors");
            let admin = path.starts_with("/v1/admin/") && !path.starts_with("/v1/admin/auth/");
            if admin {
                assert_eq!(
                    operation["security"][0]["admin_credential"],
                    serde_json::json!([]),
                    "{method} {path} needs an admin credential"
                );
            }
        }
    }
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    assert!(undocumented.is_empty(), "routes without an operation: {undocumented:?}");
    let unrouted: Vec<_> = documented.difference(&routes).collect();
    assert!(unrouted.is_empty(), "operations without a route: {unrouted:?}");
}

#[tokio::test]
async fn every_error_code_is_in_the_problem_schema() {
    let server = start().await;
    let doc: Value = server
        .http
        .get(format!("{}/openapi.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let problem = &doc["components"]["schemas"]["Problem"];
    let codes: BTreeSet<&str> = problem["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap())
        .collect();
    let catalogue: BTreeSet<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
    assert_eq!(codes, catalogue);
    let described = problem["description"].as_str().unwrap();
    for code in ErrorCode::ALL {
        assert!(
            described.contains(&format!("`{}`", code.as_str())),
            "{} is explained",
            code.as_str()
        );
    }
    // An error answer's body is the problem, as problem+json.
    let refused = &doc["paths"]["/v1/admin/tenants"]["get"]["responses"]["4XX"]["content"]["application/problem+json"];
    assert_eq!(refused["schema"]["$ref"], "#/components/schemas/Problem");
}
