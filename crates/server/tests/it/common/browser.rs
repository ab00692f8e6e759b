//! A minimal browser for driving the hosted pages over HTTP, and helpers to read them.

use std::collections::HashMap;

use reqwest::Method;

/// A minimal browser: keeps cookies, never follows redirects.
pub struct Browser {
    pub http: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    pub async fn send(
        &mut self,
        method: Method,
        url: &str,
        form: Option<&[(&str, &str)]>,
    ) -> (u16, HashMap<String, String>, String) {
        let mut request = self.http.request(method, url);
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header("cookie", cookie);
        }
        if let Some(form) = form {
            request = request.form(form);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let mut headers = HashMap::new();
        for (name, value) in response.headers() {
            let value = value.to_str().unwrap().to_owned();
            if name == "set-cookie" {
                let pair = value.split(';').next().unwrap();
                let (k, v) = pair.split_once('=').unwrap();
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
            headers.insert(name.as_str().to_owned(), value);
        }
        (status, headers, response.text().await.unwrap())
    }
}

impl Browser {
    /// Posts a step's form of `page` (its `interaction` and `csrf` fields, and `fields`)
    /// to the page's first form action.
    pub async fn submit(&mut self, page: &str, fields: &[(&str, &str)]) -> (u16, HashMap<String, String>, String) {
        let (interaction, csrf) = (hidden(page, "interaction"), hidden(page, "csrf"));
        let mut form = vec![("interaction", interaction.as_str()), ("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.send(Method::POST, &form_action(page), Some(&form)).await
    }
}

/// The value of a hidden input in a hosted page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} in {html}")) + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].replace("&#x2f;", "/").replace("&amp;", "&")
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The `action` of the first form in a hosted page.
pub fn form_action(html: &str) -> String {
    let marker = "action=\"";
    let start = html.find(marker).unwrap_or_else(|| panic!("no form in {html}")) + marker.len();
    html[start..start + html[start..].find('"').unwrap()].replace("&#x2f;", "/")
}

/// The `action` of every form in a hosted page, in order.
pub fn form_actions(html: &str) -> Vec<String> {
    html.split("action=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].replace("&#x2f;", "/"))
        .collect()
}

/// The texts of every `<code>` element in a page, in order.
pub fn code_elements(html: &str) -> Vec<String> {
    html.split("<code>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</code>").map(|(code, _)| code.to_owned()))
        .collect()
}
