//! What the load examples share: an admin API call, and signing a user in through the
//! hosted login form.

// Each example compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("hidden field") + marker.len();
    html[start..start + html[start..].find('"').unwrap()].replace("&#x2f;", "/")
}

/// One authorization-code flow with PKCE through the hosted form (authorize, the login
/// form with its CSRF cookie, the code exchange) for a public client whose redirect URI is
/// `http://localhost:3000/callback`; answers the token response, or the status of the
/// step that did not go on (e.g. 503 when the server sheds the password hash). `http`
/// must not follow redirects.
pub async fn code_flow(
    http: &reqwest::Client,
    base: &str,
    slug: &str,
    client: &str,
    email: &str,
    password: &str,
) -> Result<serde_json::Value, reqwest::StatusCode> {
    let verifier = tenantry_crypto::random_token(32);
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    let redirect = "http://localhost:3000/callback";
    let auth = format!(
        "{base}/t/{slug}/authorize?client_id={client}&response_type=code&scope=openid&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
    );
    let page = http.get(&auth).send().await.unwrap();
    let csrf_cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    let html = page.text().await.unwrap();
    let form = [
        ("interaction", field(&html, "interaction")),
        ("csrf", field(&html, "csrf")),
        ("email", email.to_owned()),
        ("password", password.to_owned()),
    ];
    let done = http
        .post(format!("{base}/t/{slug}/login"))
        .header("cookie", csrf_cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    let location = match done.headers().get("location") {
        Some(location) => location.to_str().unwrap().to_owned(),
        None => return Err(done.status()),
    };
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .expect("a code")
        .1
        .into_owned();
    let tokens: serde_json::Value = http
        .post(format!("{base}/t/{slug}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("client_id", client),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Ok(tokens)
}

/// One admin API call with the admin token; panics unless it succeeds (a load run cannot
/// go on without its setup). Answers the JSON body.
pub async fn admin(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let response = http
        .request(method, format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// Nanoseconds the server process has run on a CPU, all its threads, those that have
/// ended included: `utime` + `stime` of `/proc/<pid>/stat`, in clock ticks (USER_HZ, 100
/// on Linux). Summing the live threads' `schedstat` instead loses the time of a thread
/// that ends during a run (a database connection closed when idle), so a count could
/// even go backwards.
pub fn server_cpu_ns(pid: u32) -> u64 {
    const NS_PER_TICK: u64 = 1_000_000_000 / 100;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let Some((_, fields)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = fields.split_whitespace().collect();
    // After the name: state is field 3 of the line, utime 14 and stime 15.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) * NS_PER_TICK
}
