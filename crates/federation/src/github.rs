//! GitHub as an upstream: plain OAuth 2.0 (no ID token, no discovery) on the `oauth2`
//! crate, then who signed in from GitHub's REST API: the user (`GET /user`, its numeric
//! `id` is the subject) and its primary email with GitHub's own verified flag
//! (`GET /user/emails`). github.com, or GitHub Enterprise Server at the provider's
//! `issuer_url` (API under `/api/v3`). Every call goes through [`Upstreams::call`], so the
//! outbound policy, timeout, size cap and in-flight cap are the same as for OpenID
//! providers.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tenantry_controlplane::model::SocialProvider;

use crate::fetch::{FetchError, Fetcher, Upstreams, describe, printable};
use crate::upstream::{Pending, UpstreamError, UpstreamIdentity};

/// The API version the answers' shapes are read in.
const API_VERSION: &str = "2022-11-28";

/// GitHub's scopes when the provider names none: the profile and the email addresses.
const DEFAULT_SCOPES: [&str; 2] = ["read:user", "user:email"];

/// One sign-in's GitHub: its web address (authorize, token) and API address.
pub(crate) struct GitHub<'a> {
    pub web: &'a str,
    pub api: &'a str,
    pub upstreams: &'a Upstreams,
}

fn endpoint_error(e: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::BadAnswer(format!("GitHub's address is not valid: {e}"))
}

/// The authorization URL (with PKCE S256 and `state`), and what the callback will check.
pub(crate) fn begin(
    provider: &SocialProvider,
    web: &str,
    redirect_uri: &str,
) -> Result<(url::Url, Pending), UpstreamError> {
    let client = BasicClient::new(ClientId::new(provider.client_id.clone()))
        .set_auth_uri(AuthUrl::new(format!("{web}/login/oauth/authorize")).map_err(endpoint_error)?)
        .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).map_err(endpoint_error)?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    if provider.scopes.is_empty() {
        for scope in DEFAULT_SCOPES {
            request = request.add_scope(Scope::new(scope.to_owned()));
        }
    } else {
        for scope in &provider.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
    }
    let (url, state) = request.url();
    let pending = Pending {
        provider: provider.id.clone(),
        issuer: web.to_owned(),
        state: state.secret().clone(),
        nonce: String::new(),
        verifier: verifier.secret().clone(),
    };
    Ok((url, pending))
}

/// What the admin's test reports: GitHub's endpoints, once its API has answered.
pub(crate) async fn probe(upstreams: &Upstreams, web: &str, api: &str) -> Result<Value, UpstreamError> {
    let github = GitHub { web, api, upstreams };
    let (status, _) = github.get(&format!("{api}/"), None).await?;
    if !(200..300).contains(&status) {
        return Err(UpstreamError::BadAnswer(format!("GitHub's API answered HTTP {status}")));
    }
    Ok(json!({
        "issuer": web,
        "authorization_endpoint": format!("{web}/login/oauth/authorize"),
        "token_endpoint": format!("{web}/login/oauth/access_token"),
        "api": api,
    }))
}

/// `GET /user`, as far as it is read.
#[derive(Deserialize)]
struct User {
    id: u64,
    login: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    avatar_url: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
}

/// One entry of `GET /user/emails`.
#[derive(Deserialize)]
struct Email {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

impl GitHub<'_> {
    /// The code exchange (client secret in the body, PKCE verifier), then the user and
    /// its primary email.
    pub(crate) async fn finish(
        &self,
        provider: &SocialProvider,
        secret: String,
        redirect_uri: &str,
        pending: &Pending,
        code: &str,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        let client = BasicClient::new(ClientId::new(provider.client_id.clone()))
            .set_client_secret(ClientSecret::new(secret))
            .set_token_uri(TokenUrl::new(format!("{}/login/oauth/access_token", self.web)).map_err(endpoint_error)?)
            .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).map_err(endpoint_error)?)
            .set_auth_type(AuthType::RequestBody);
        let http = Fetcher::new(self.upstreams);
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
            .request_async(&http)
            .await
            .map_err(|e| match e {
                RequestTokenError::Request(e) => UpstreamError::Unreachable(e.0),
                RequestTokenError::ServerResponse(e) => {
                    UpstreamError::Invalid(format!("the token endpoint answered {}", e.error()))
                }
                // GitHub answers a refused code with 200 and an `error` member.
                RequestTokenError::Parse(_, body) => match serde_json::from_slice::<Value>(&body) {
                    Ok(Value::Object(answer)) if answer.get("error").is_some_and(Value::is_string) => {
                        let error = answer["error"].as_str().unwrap_or_default();
                        UpstreamError::Invalid(format!("the token endpoint answered {}", printable(error, 64)))
                    }
                    _ => UpstreamError::Invalid("the token endpoint's answer is not a token".into()),
                },
                other => UpstreamError::Invalid(describe(&other)),
            })?;
        let bearer = token.access_token().secret().clone();

        let (status, body) = self.get(&format!("{}/user", self.api), Some(&bearer)).await?;
        if status != 200 {
            return Err(UpstreamError::Invalid(format!(
                "GitHub's user API answered HTTP {status}"
            )));
        }
        let user: User = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Invalid(format!("GitHub's user is not readable: {e}")))?;
        let (status, body) = self.get(&format!("{}/user/emails", self.api), Some(&bearer)).await?;
        let primary = match status {
            200 => serde_json::from_slice::<Vec<Email>>(&body)
                .map_err(|e| UpstreamError::Invalid(format!("GitHub's emails are not readable: {e}")))?
                .into_iter()
                .find(|e| e.primary),
            // The `user:email` scope was not granted: no address.
            403 | 404 => None,
            other => {
                return Err(UpstreamError::Invalid(format!(
                    "GitHub's email API answered HTTP {other}"
                )));
            }
        };
        let mut claims = Map::new();
        claims.insert("sub".into(), json!(user.id.to_string()));
        claims.insert("login".into(), json!(user.login));
        claims.insert("preferred_username".into(), json!(user.login));
        for (claim, value) in [
            ("name", user.name),
            ("picture", user.avatar_url),
            ("profile", user.html_url),
        ] {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                claims.insert(claim.into(), json!(value));
            }
        }
        if let Some(primary) = primary {
            claims.insert("email".into(), json!(primary.email));
            claims.insert("email_verified".into(), json!(primary.verified));
        }
        UpstreamIdentity::from_claims(user.id.to_string(), provider.kind, claims)
    }

    /// A GET of GitHub's API: its status and body.
    async fn get(&self, url: &str, bearer: Option<&str>) -> Result<(u16, Vec<u8>), UpstreamError> {
        let mut request = http::Request::get(url)
            .header(http::header::ACCEPT, "application/vnd.github+json")
            .header(http::header::USER_AGENT, "Tenantry")
            .header("X-GitHub-Api-Version", API_VERSION);
        if let Some(bearer) = bearer {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {bearer}"));
        }
        let request = request.body(Vec::new()).map_err(endpoint_error)?;
        let http = Fetcher::new(self.upstreams);
        let response = oauth2::AsyncHttpClient::call(&http, request)
            .await
            .map_err(|FetchError(e)| UpstreamError::Unreachable(e))?;
        Ok((response.status().as_u16(), response.into_body()))
    }
}
