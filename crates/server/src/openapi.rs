//! The OpenAPI 3.1 description of the admin API (`/v1/admin`) and the headless
//! authentication API (`/v1/auth`), generated from the handlers' own annotations
//! (`utoipa`) and served at `/openapi.json`.
//!
//! Each route module declares its operations in a `Doc` beside its router; this module
//! merges them and adds what every operation shares: the problem+json error body with the
//! whole error catalogue as its `code` enum, the credentials, and the errors any operation
//! can answer (a malformed request, a gate refusal, an unreachable tenant database).

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ArrayBuilder, ContentBuilder, HeaderBuilder, ObjectBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder, Schema,
    Type,
};
use utoipa::{OpenApi as _, PartialSchema};

use crate::error::ErrorCode;
use crate::routes;

/// The security scheme of the admin API: an admin access token (`tenantry login`) or an
/// API key, as a bearer token.
pub const ADMIN_CREDENTIAL: &str = "admin_credential";
/// The security scheme of the signed-in user's `/v1/auth` calls: the access token that
/// login answered, as a bearer token.
pub const USER_TOKEN: &str = "user_access_token";

/// The name of the shared problem+json response and schema in `components`.
const PROBLEM: &str = "Problem";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Tenantry API",
        description = "The admin API of a Tenantry installation and the headless authentication API of its tenants. \
Errors are RFC 9457 problem+json bodies whose `code` is one of a stable catalogue (docs/errors.md).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "admin-auth", description = "Admin sign-in: password + TOTP against the installation's issuer"),
        (name = "admins", description = "Admin identities and API keys"),
        (name = "tenants", description = "Tenants, their settings and databases"),
        (name = "clients", description = "OAuth clients of a tenant"),
        (name = "scopes", description = "A tenant's own scopes"),
        (name = "roles", description = "Roles and permissions, and their assignment to users"),
        (name = "users", description = "A tenant's users"),
        (name = "sessions", description = "A user's sessions, refresh tokens and consents"),
        (name = "keys", description = "A tenant's signing keys"),
        (name = "audit", description = "The audit trail of admin changes and security events"),
        (name = "auth", description = "The headless authentication API of a tenant (`/v1/auth`)"),
    )
)]
struct Root;

/// The whole document, built once.
pub fn document() -> &'static OpenApi {
    static DOCUMENT: OnceLock<OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

fn build() -> OpenApi {
    let mut doc = Root::openapi();
    for part in [
        routes::admin::Doc::openapi(),
        routes::admin_admins::Doc::openapi(),
        routes::admin_api_keys::Doc::openapi(),
        routes::admin_auth::Doc::openapi(),
        routes::admin_clients::Doc::openapi(),
        routes::admin_email::Doc::openapi(),
        routes::admin_keys::Doc::openapi(),
        routes::admin_providers::Doc::openapi(),
        routes::admin_roles::Doc::openapi(),
        routes::admin_scopes::Doc::openapi(),
        routes::admin_sessions::Doc::openapi(),
        routes::admin_transfer::Doc::openapi(),
        routes::admin_users::Doc::openapi(),
        routes::auth_api::Doc::openapi(),
        routes::api::Doc::openapi(),
    ] {
        doc.merge(part);
    }
    add_shared_parts(&mut doc);
    unique_operation_ids(&mut doc);
    doc
}

/// Operation ids default to the handler's name, which two modules may share (`list`,
/// `show`): a shared one becomes the method and the path instead (`get_admin_admins_by_id`).
fn unique_operation_ids(doc: &mut OpenApi) {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for item in doc.paths.paths.values_mut() {
        for operation in operations(item) {
            if let Some(id) = &operation.operation_id {
                *seen.entry(id.clone()).or_default() += 1;
            }
        }
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let methods = ["get", "put", "post", "delete", "patch"];
        for (method, operation) in methods.iter().zip(operations_by_method(item)) {
            let Some(operation) = operation else { continue };
            let shared = operation.operation_id.as_ref().is_some_and(|id| seen[id] > 1);
            if shared || operation.operation_id.is_none() {
                let words: Vec<String> = path
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != "v1")
                    .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(param) => format!("by_{param}"),
                        None => s.replace('-', "_"),
                    })
                    .collect();
                operation.operation_id = Some(format!("{method}_{}", words.join("_")));
            }
        }
    }
}

/// `GET /openapi.json`.
pub async fn serve_document() -> Response {
    static BODY: OnceLock<String> = OnceLock::new();
    let body = BODY.get_or_init(|| document().to_json().expect("the OpenAPI document serializes"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
        ],
        body.as_str(),
    )
        .into_response()
}

/// The problem+json body (RFC 9457) every error of these APIs answers.
fn problem_schema() -> Schema {
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
    let field_error = ObjectBuilder::new()
        .property("field", ObjectBuilder::new().schema_type(Type::String))
        .property("message", ObjectBuilder::new().schema_type(Type::String))
        .required("field")
        .required("message");
    let mut catalogue = String::from(
        "An RFC 9457 problem. `code` is stable and `type` is `urn:tenantry:error:{code}`; \
         `errors` names the fields of a request that failed validation.\n\n| code | status | meaning |\n| --- | --- | --- |\n",
    );
    for code in ErrorCode::ALL {
        catalogue.push_str(&format!(
            "| `{}` | {} | {} |\n",
            code.as_str(),
            code.status().as_u16(),
            code.title()
        ));
    }
    ObjectBuilder::new()
        .description(Some(catalogue))
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(utoipa::openapi::SchemaFormat::Custom("uri".to_owned()))),
        )
        .property("title", ObjectBuilder::new().schema_type(Type::String))
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(400))
                .maximum(Some(599)),
        )
        .property("detail", ObjectBuilder::new().schema_type(Type::String))
        .property(
            "code",
            ObjectBuilder::new().schema_type(Type::String).enum_values(Some(codes)),
        )
        .property("errors", ArrayBuilder::new().items(field_error))
        .required("type")
        .required("title")
        .required("status")
        .required("detail")
        .required("code")
        .build()
        .into()
}

fn problem_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(PROBLEM)))
                .build(),
        )
        .build()
        .into()
}

fn retry_after_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    let RefOr::T(mut response) = problem_response(description) else {
        unreachable!("problem_response builds a response, not a reference")
    };
    response.headers.insert(
        "Retry-After".to_owned(),
        RefOr::T(
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1))))
                .description(Some("Seconds to wait before trying again"))
                .build(),
        ),
    );
    response.into()
}

/// Errors any operation can answer, added where an operation does not say more:
/// a malformed or refused request (4XX), a busy server or an unreachable tenant database
/// (503). 500 is never documented: an internal error is a bug.
fn add_shared_parts(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.insert(PROBLEM.to_owned(), problem_schema().into());
    components.add_security_scheme(
        ADMIN_CREDENTIAL,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An admin access token or an admin API key (`tnk_…`)"))
                .build(),
        ),
    );
    components.add_security_scheme(
        USER_TOKEN,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some("The access token a `/v1/auth` login answered"))
                .build(),
        ),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let admin = path.starts_with("/v1/admin/") && !path.starts_with("/v1/admin/auth/");
        let auth_api = path.starts_with("/v1/auth/") || path == "/v1/tenant";
        for operation in operations(item) {
            if admin && operation.security.is_none() {
                operation.security = Some(vec![SecurityRequirement::new(ADMIN_CREDENTIAL, Vec::<String>::new())]);
            }
            if auth_api {
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(RefOr::T(tenant_header()));
            }
            let responses = &mut operation.responses.responses;
            // OpenAPI requires a description on every response.
            for (status, response) in responses.iter_mut() {
                if let RefOr::T(response) = response
                    && response.description.is_empty()
                {
                    response.description = match status.as_str() {
                        "201" => "Created",
                        "204" => "Done; no content",
                        s if s.starts_with('2') => "Success",
                        _ => "Refused",
                    }
                    .to_owned();
                }
            }
            // An error an operation names is a problem too; it only says when it happens.
            for (status, response) in responses.iter_mut() {
                if let (true, RefOr::T(response)) = (status.starts_with(['4', '5']), response) {
                    response
                        .content
                        .entry("application/problem+json".to_owned())
                        .or_insert_with(|| {
                            RefOr::T(
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name(PROBLEM)))
                                    .build(),
                            )
                        });
                }
            }
            responses
                .entry("4XX".to_owned())
                .or_insert_with(|| problem_response("The request was refused; `code` says why"));
            responses.entry("503".to_owned()).or_insert_with(|| {
                retry_after_response("The server is busy, or a store the operation needs is unreachable")
            });
            if operation.security.is_some() {
                responses
                    .entry("401".to_owned())
                    .or_insert_with(|| problem_response("No valid credential (missing, expired or revoked)"));
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    operations_by_method(item).into_iter().flatten()
}

/// GET, PUT, POST, DELETE, PATCH, in this order.
fn operations_by_method(item: &mut utoipa::openapi::PathItem) -> [Option<&mut Operation>; 5] {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
}

/// `/v1/auth` picks its tenant from this header (or `?tenant`, or the default tenant).
fn tenant_header() -> Parameter {
    ParameterBuilder::new()
        .name("X-Tenant-Slug")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "The tenant's slug; without it, `?tenant` or the installation's default tenant",
        ))
        .schema(Some(String::schema()))
        .build()
}
