//! A client of a remote skills registry (seed `004`'s SkillsMP), over HTTP with JSON bodies.
//!
//! The wire format, under the configured base URL (`https://registry.example.com/api`):
//!
//! ```text
//! GET {base}/skills?q=<text>
//! 200 {"skills": [{"id": "smp_prd", "name": "PRD Writer", "description": "...",
//!                  "version": "2.1.0", "tags": ["prd"]}]}
//!
//! GET {base}/skills/{id}
//! 200 {"id": "smp_prd", "name": "PRD Writer", "description": "...", "version": "2.1.0",
//!      "tags": ["prd"],
//!      "inputs":  [{"name": "research", "type": "string", "required": true, "description": "..."}],
//!      "outputs": [{"name": "prd", "type": "string", "required": false, "description": "..."}],
//!      "kind": "prompt" | "jury",
//!      "prompt_template": "Write a PRD from {{research}}",
//!      "templates": {"prd-template.md": "# PRD ..."},
//!      "metadata": {...anything...}}
//! 404 when the registry has no such skill
//! ```
//!
//! Only `id` (and `name` for a skill) is required; every other field may be left out. The
//! `{id}` is one URL path segment, percent-encoded. With a token, every request carries
//! `Authorization: Bearer <token>`. A body may be at most 4 MiB.
//!
//! A fetched skill's id (the `id` it answers, which must be a valid skill id) is its id in the
//! catalog; its `remote_metadata` is `{"source_url": <the URL it was fetched from>,
//! "metadata": <the registry's metadata>}`; its version is the one the registry states, else
//! one derived from its content.
//!
//! Errors: a registry that cannot be reached, times out, or answers 429 or 5xx is
//! `Error::Upstream` (worth retrying); a skill the registry does not have is
//! `Error::NotFound`; a refused token, any other status, or a body that is not what this format
//! says is `Error::FailedPrecondition` (the configuration or the registry needs fixing).

use std::{collections::BTreeMap, fmt, time::Duration};

use reqwest::{
    header::{HeaderValue, AUTHORIZATION},
    StatusCode, Url,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{json, Value};

use super::skill::{validate_definition, validate_skill_id, version_of};
use crate::{
    domain::{SkillDefinition, SkillField, SkillId, SkillKind},
    error::{Error, Result},
};

/// The largest body read from the registry.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The longest remote id accepted.
const MAX_REMOTE_ID_CHARS: usize = 256;

/// A skill as a registry's search lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryListing {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `GET {base}/skills?q=`.
#[derive(Debug, Deserialize)]
struct SearchAnswer {
    skills: Vec<RegistryListing>,
}

/// `GET {base}/skills/{id}`.
#[derive(Debug, Deserialize)]
struct SkillAnswer {
    id: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    inputs: Vec<FieldAnswer>,
    #[serde(default)]
    outputs: Vec<FieldAnswer>,
    #[serde(default)]
    kind: SkillKind,
    #[serde(default)]
    prompt_template: String,
    #[serde(default)]
    templates: BTreeMap<String, String>,
    #[serde(default)]
    metadata: Value,
}

#[derive(Debug, Deserialize)]
struct FieldAnswer {
    name: String,
    #[serde(default, rename = "type")]
    type_name: String,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    description: String,
}

impl From<FieldAnswer> for SkillField {
    fn from(field: FieldAnswer) -> Self {
        Self {
            name: field.name,
            type_name: field.type_name,
            required: field.required,
            description: field.description,
        }
    }
}

/// A client of one skills registry.
#[derive(Clone)]
pub struct RegistryClient {
    base: Url,
    token: Option<HeaderValue>,
    http: reqwest::Client,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token.
        f.debug_struct("RegistryClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client of the registry at `base_url` (an `http` or `https` URL, without a query),
    /// sending `token` as a bearer token when given; each request may take `timeout`.
    pub fn new(base_url: &str, token: Option<String>, timeout: Duration) -> Result<Self> {
        let base = parse_base_url(base_url)?;
        let token = match token.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(token) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        Error::invalid(
                            "registry_token",
                            "holds characters an HTTP header cannot carry",
                        )
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("conclave/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(30)))
            .build()
            .map_err(|err| {
                Error::Internal(format!(
                    "cannot build the HTTP client of the skills registry: {err}"
                ))
            })?;
        Ok(Self { base, token, http })
    }

    /// The registry's base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// The skills the registry lists for a search.
    pub async fn search(&self, query: &str) -> Result<Vec<RegistryListing>> {
        let mut url = self.url(&["skills"])?;
        url.query_pairs_mut().append_pair("q", query);
        let answer: SearchAnswer = match self.get(&url).await? {
            Answer::Body(body) => parse(&url, &body, "a list of skills")?,
            Answer::NotFound => {
                return Err(Error::precondition(
                    "REGISTRY_BAD_ANSWER",
                    format!("the skills registry answered 404 to GET {url}: is the registry URL its base URL?"),
                ));
            }
        };
        if let Some(listing) = answer.skills.iter().find(|listing| listing.id.is_empty()) {
            return Err(not_a_skill(
                &url,
                format!("a listed skill has no id (`{}`)", listing.name),
            ));
        }
        Ok(answer.skills)
    }

    /// Fetches a skill: its id in the catalog, its definition and its version.
    pub async fn fetch(&self, id: &str) -> Result<(SkillId, SkillDefinition, String)> {
        if id.is_empty() {
            return Err(Error::invalid(
                "remote_id",
                "is required: the registry's id of the skill",
            ));
        }
        if id.chars().count() > MAX_REMOTE_ID_CHARS || id.chars().any(char::is_control) {
            return Err(Error::invalid("remote_id", format!("is not a registry id: at most {MAX_REMOTE_ID_CHARS} characters, none of them control characters")));
        }
        let url = self.url(&["skills", id])?;
        let body = match self.get(&url).await? {
            Answer::Body(body) => body,
            Answer::NotFound => return Err(Error::not_found("registry skill", id)),
        };
        let answer: SkillAnswer = parse(&url, &body, "a skill")?;
        let skill_id = validate_skill_id("id", &answer.id)
            .map_err(|err| not_a_skill(&url, format!("its id: {}", violation(&err))))?;
        let definition = SkillDefinition {
            name: answer.name,
            description: answer.description,
            kind: answer.kind,
            inputs: answer.inputs.into_iter().map(SkillField::from).collect(),
            outputs: answer.outputs.into_iter().map(SkillField::from).collect(),
            tags: answer.tags,
            prompt_template: answer.prompt_template,
            templates: answer.templates,
            remote_metadata: Some(
                json!({ "source_url": url.as_str(), "metadata": answer.metadata }),
            ),
        };
        validate_definition(&definition).map_err(|problem| not_a_skill(&url, problem))?;
        let declared = answer.version.trim();
        let (version, _) = version_of(&definition, (!declared.is_empty()).then_some(declared));
        Ok((skill_id, definition, version))
    }

    /// The base URL with path segments added (each percent-encoded).
    fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| {
                Error::invalid(
                    "registry_url",
                    format!("`{}` cannot hold a path", self.base),
                )
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// GETs a URL: its body on 2xx (at most [`MAX_BODY_BYTES`]), `NotFound` on 404, an error
    /// otherwise.
    async fn get(&self, url: &Url) -> Result<Answer> {
        let mut request = self
            .http
            .get(url.clone())
            .header("accept", "application/json");
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, token.clone());
        }
        let mut response = request.send().await.map_err(|err| unreachable(url, &err))?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(Answer::NotFound);
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(upstream(format!(
                "the skills registry answered {status} to GET {url}; try again later"
            )));
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let has = if self.token.is_some() {
                "refused the configured token"
            } else {
                "wants a token, and none is configured"
            };
            return Err(Error::precondition(
                "REGISTRY_UNAUTHORIZED",
                format!("the skills registry {has} ({status} to GET {url})"),
            ));
        }
        if !status.is_success() {
            return Err(Error::precondition(
                "REGISTRY_BAD_ANSWER",
                format!("the skills registry answered {status} to GET {url}"),
            ));
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_BODY_BYTES as u64)
        {
            return Err(too_large(url));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| unreachable(url, &err))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large(url));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer::Body(body))
    }
}

/// What a GET got.
enum Answer {
    Body(Vec<u8>),
    NotFound,
}

/// Checks the configured base URL: absolute `http` or `https`, with a host, without a query
/// or a fragment. A trailing `/` does not matter.
fn parse_base_url(base_url: &str) -> Result<Url> {
    let field = "registry_url";
    let text = base_url.trim();
    if text.is_empty() {
        return Err(Error::invalid(
            field,
            "is empty: give the registry's base URL, like https://registry.example.com/api",
        ));
    }
    let url = Url::parse(text).map_err(|err| {
        Error::invalid(
            field,
            format!(
                "`{text}` is not a URL ({err}); write it like https://registry.example.com/api"
            ),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::invalid(
            field,
            format!("`{text}` is not an http or https URL"),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::invalid(field, format!("`{text}` names no host")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::invalid(
            field,
            format!("`{text}` has a query or a fragment; give the registry's base URL only"),
        ));
    }
    if url.cannot_be_a_base() {
        return Err(Error::invalid(
            field,
            format!("`{text}` cannot hold a path"),
        ));
    }
    Ok(url)
}

/// Parses a body as JSON of `T`, or says the registry answered something that is not `what`.
fn parse<T: DeserializeOwned>(url: &Url, body: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(body).map_err(|err| {
        Error::precondition(
            "REGISTRY_BAD_ANSWER",
            format!(
                "the skills registry answered GET {url} with something that is not {what}: {err}"
            ),
        )
    })
}

fn not_a_skill(url: &Url, problem: impl fmt::Display) -> Error {
    Error::precondition(
        "REGISTRY_BAD_ANSWER",
        format!(
            "the skills registry answered GET {url} with something that is not a skill: {problem}"
        ),
    )
}

fn too_large(url: &Url) -> Error {
    Error::precondition("REGISTRY_BAD_ANSWER", format!("the skills registry's answer to GET {url} is larger than {MAX_BODY_BYTES} bytes, the most read"))
}

/// A failure of the registry itself, worth retrying.
fn upstream(message: String) -> Error {
    Error::Upstream { service: "skills_registry", message }
}

fn unreachable(url: &Url, err: &reqwest::Error) -> Error {
    let what = if err.is_timeout() {
        "did not answer in time"
    } else {
        "could not be reached"
    };
    // reqwest's error carries the URL already; its source says what went wrong.
    let cause = std::error::Error::source(err).map_or_else(|| err.to_string(), ToString::to_string);
    upstream(format!("the skills registry {what} (GET {url}): {cause}"))
}

/// The description of an `InvalidArgument`, for an error that is not the caller's.
fn violation(err: &Error) -> String {
    match err {
        Error::InvalidArgument(violations) => violations
            .iter()
            .map(|v| v.description.clone())
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::HashMap,
        sync::{Arc, Mutex},
    };

    use axum::{
        extract::{Path as UrlPath, Query},
        http::{HeaderMap, StatusCode as AxumStatus},
        response::IntoResponse,
        routing::get,
        Router,
    };

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    /// A registry under `/api`: `smp_prd` is a skill; `broken` answers non-JSON, `not-a-skill`
    /// JSON without a name, `bad-id` an id that is not a skill id, `huge` more than 4 MiB,
    /// `down` 503, `secret` wants the token `t0k`. Search lists `smp_prd` for `q=prd`, and the
    /// last Authorization header seen is kept.
    async fn registry() -> (String, Arc<Mutex<Option<String>>>) {
        let seen = Arc::new(Mutex::new(None));
        let search_seen = seen.clone();
        let search = move |headers: HeaderMap, Query(query): Query<HashMap<String, String>>| {
            let seen = search_seen.clone();
            async move {
                *seen.lock().unwrap() = headers
                    .get("authorization")
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                let skills = if query.get("q").map(String::as_str) == Some("prd") {
                    json!([{"id": "smp_prd", "name": "PRD Writer", "description": "Writes PRDs", "version": "2.1.0", "tags": ["prd"]}, {"id": "bare"}])
                } else {
                    json!([])
                };
                axum::Json(json!({ "skills": skills }))
            }
        };
        let fetch = |headers: HeaderMap, UrlPath(id): UrlPath<String>| async move {
            let skill = json!({
                "id": "smp_prd", "name": "PRD Writer", "description": "Writes PRDs", "version": "2.1.0", "tags": ["prd"],
                "inputs": [{"name": "research", "type": "string", "required": true, "description": "findings"}],
                "outputs": [{"name": "prd", "type": "string", "description": "the PRD"}],
                "kind": "prompt", "prompt_template": "Write a PRD from {{research}}",
                "templates": {"prd-template.md": "# PRD\n"}, "metadata": {"downloads": 1200}
            });
            match id.as_str() {
                "smp_prd" => axum::Json(skill).into_response(),
                "minimal" => axum::Json(json!({"id": "minimal", "name": "Minimal"})).into_response(),
                "broken" => (AxumStatus::OK, "<html>oops</html>").into_response(),
                "not-a-skill" => axum::Json(json!({"id": "not-a-skill", "title": "no name"})).into_response(),
                "bad-id" => axum::Json(json!({"id": "Bad Id", "name": "x"})).into_response(),
                "bad-template" => axum::Json(json!({"id": "bad-template", "name": "x", "prompt_template": "{{ unclosed"})).into_response(),
                "huge" => axum::Json(json!({"id": "huge", "name": "x", "prompt_template": "x".repeat(MAX_BODY_BYTES)})).into_response(),
                "down" => AxumStatus::SERVICE_UNAVAILABLE.into_response(),
                "teapot" => AxumStatus::IM_A_TEAPOT.into_response(),
                "secret" if headers.get("authorization").is_some_and(|value| value == "Bearer t0k") => {
                    axum::Json(json!({"id": "secret", "name": "Secret"})).into_response()
                }
                "secret" => AxumStatus::UNAUTHORIZED.into_response(),
                _ => AxumStatus::NOT_FOUND.into_response(),
            }
        };
        let app = Router::new()
            .route("/api/skills", get(search))
            .route("/api/skills/{id}", get(fetch));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}/api/"), seen)
    }

    fn reason(err: &Error) -> &'static str {
        match err {
            Error::FailedPrecondition { reason, .. } => reason,
            other => panic!("not a failed precondition: {other:?}"),
        }
    }

    #[tokio::test]
    async fn searches_the_registry_with_the_token() {
        let (url, seen) = registry().await;
        let client = RegistryClient::new(&url, Some("t0k".into()), TIMEOUT).unwrap();
        let found = client.search("prd").await.unwrap();
        assert_eq!(
            found,
            [
                RegistryListing {
                    id: "smp_prd".into(),
                    name: "PRD Writer".into(),
                    description: "Writes PRDs".into(),
                    version: "2.1.0".into(),
                    tags: vec!["prd".into()],
                },
                RegistryListing {
                    id: "bare".into(),
                    name: String::new(),
                    description: String::new(),
                    version: String::new(),
                    tags: Vec::new()
                },
            ]
        );
        assert_eq!(seen.lock().unwrap().as_deref(), Some("Bearer t0k"));
        assert!(client.search("nothing & more").await.unwrap().is_empty());

        let anonymous = RegistryClient::new(&url, Some("  ".into()), TIMEOUT).unwrap();
        anonymous.search("prd").await.unwrap();
        assert_eq!(
            seen.lock().unwrap().as_deref(),
            None,
            "a blank token is no token"
        );
        assert!(
            !format!("{client:?}").contains("t0k"),
            "the token is never printed"
        );
    }

    #[tokio::test]
    async fn fetches_a_skill() {
        let (url, _) = registry().await;
        let client = RegistryClient::new(&url, None, TIMEOUT).unwrap();
        let (id, definition, version) = client.fetch("smp_prd").await.unwrap();
        assert_eq!((id.as_str(), version.as_str()), ("smp_prd", "2.1.0"));
        assert_eq!(definition.name, "PRD Writer");
        assert_eq!(definition.kind, SkillKind::Prompt);
        assert_eq!(
            definition.inputs,
            [SkillField {
                name: "research".into(),
                type_name: "string".into(),
                required: true,
                description: "findings".into()
            }]
        );
        assert_eq!(definition.outputs[0].name, "prd");
        assert_eq!(definition.prompt_template, "Write a PRD from {{research}}");
        assert_eq!(
            definition
                .templates
                .get("prd-template.md")
                .map(String::as_str),
            Some("# PRD\n")
        );
        let source = format!("{}skills/smp_prd", url);
        assert_eq!(
            definition.remote_metadata,
            Some(json!({"source_url": source, "metadata": {"downloads": 1200}}))
        );

        let (_, minimal, version) = client.fetch("minimal").await.unwrap();
        assert_eq!(
            version,
            version_of(&minimal, None).0,
            "without a version, it is derived from the content"
        );
        assert!(version.starts_with("sha256:"));
        assert_eq!(
            minimal.remote_metadata,
            Some(json!({"source_url": format!("{url}skills/minimal"), "metadata": null}))
        );

        let with_token =
            RegistryClient::new(url.trim_end_matches('/'), Some("t0k".into()), TIMEOUT).unwrap();
        assert_eq!(
            with_token.fetch("secret").await.unwrap().0.as_str(),
            "secret",
            "the base URL's trailing / does not matter"
        );
    }

    #[tokio::test]
    async fn a_missing_skill_is_not_found() {
        let (url, _) = registry().await;
        let client = RegistryClient::new(&url, None, TIMEOUT).unwrap();
        match client.fetch("smp_missing").await {
            Err(Error::NotFound { resource, id }) => {
                assert_eq!((resource, id.as_str()), ("registry skill", "smp_missing"))
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(client.fetch("a/b?c").await, Err(Error::NotFound { .. })),
            "an id is one path segment"
        );
        assert!(matches!(
            client.fetch("").await,
            Err(Error::InvalidArgument(_))
        ));
    }

    #[tokio::test]
    async fn malformed_answers_say_they_are_not_skills() {
        let (url, _) = registry().await;
        let client = RegistryClient::new(&url, None, TIMEOUT).unwrap();
        for (id, expected) in [
            ("broken", "is not a skill"),
            ("not-a-skill", "missing field `name`"),
            ("bad-id", "`Bad Id` is not a valid skill id"),
            ("bad-template", "the prompt template: line 1"),
            ("huge", "larger than 4194304 bytes"),
            ("teapot", "418"),
        ] {
            let err = client.fetch(id).await.unwrap_err();
            assert_eq!(reason(&err), "REGISTRY_BAD_ANSWER", "{id}");
            assert!(
                err.to_string().contains(expected),
                "{id}: `{err}` should say `{expected}`"
            );
        }
        let err = client.fetch("secret").await.unwrap_err();
        assert_eq!(reason(&err), "REGISTRY_UNAUTHORIZED");
        assert!(err.to_string().contains("none is configured"), "{err}");

        let wrong_base = RegistryClient::new(&format!("{url}nested"), None, TIMEOUT).unwrap();
        let err = wrong_base.search("prd").await.unwrap_err();
        assert!(
            reason(&err) == "REGISTRY_BAD_ANSWER" && err.to_string().contains("404"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_or_failing_registry_is_unavailable() {
        let (url, _) = registry().await;
        let client = RegistryClient::new(&url, None, TIMEOUT).unwrap();
        let err = client.fetch("down").await.unwrap_err();
        assert!(
            matches!(&err, Error::Upstream { message, .. } if message.contains("503")),
            "{err:?}"
        );

        // A port nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client =
            RegistryClient::new(&format!("http://127.0.0.1:{port}"), None, TIMEOUT).unwrap();
        let err = client.search("x").await.unwrap_err();
        assert!(
            matches!(&err, Error::Upstream { message, .. } if message.contains("could not be reached")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_registry_that_does_not_answer_in_time_is_unavailable() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts and never answers.
        let _server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let client =
            RegistryClient::new(&format!("http://{addr}"), None, Duration::from_millis(200))
                .unwrap();
        let err = client.search("x").await.unwrap_err();
        assert!(
            matches!(&err, Error::Upstream { message, .. } if message.contains("did not answer in time")),
            "{err:?}"
        );
    }

    #[test]
    fn bad_urls_are_refused() {
        for bad in [
            "",
            "registry.example.com",
            "ftp://registry.example.com",
            "https://",
            "https://r.example.com/api?x=1",
            "https://r.example.com/#top",
            "mailto:a@b.c",
        ] {
            match RegistryClient::new(bad, None, TIMEOUT) {
                Err(Error::InvalidArgument(violations)) => {
                    assert_eq!(violations[0].field, "registry_url", "{bad:?}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert!(matches!(
            RegistryClient::new("https://r.example.com", Some("a\nb".into()), TIMEOUT),
            Err(Error::InvalidArgument(_))
        ));
        let client = RegistryClient::new(" https://r.example.com/api/ ", None, TIMEOUT).unwrap();
        assert_eq!(
            client.url(&["skills", "a b/c"]).unwrap().as_str(),
            "https://r.example.com/api/skills/a%20b%2Fc"
        );
        assert_eq!(client.base_url(), "https://r.example.com/api/");
    }
}
