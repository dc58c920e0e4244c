//! Two levels of errors (DESIGN.md rule 3): [`Error`] carries the internal reason; [`Error::to_response`]
//! turns it into the small wire error a client sees, in one exhaustive match.
//!
//! Every wire error carries the RFC 6749 section 5.2 members `{"error": ..., "error_description":
//! ...}`, so a client needs one error parser; validation errors add `field`, the JSON path of the
//! offending field. On FHIR paths (the authorizer and the admin API, everything but `/auth/*`,
//! `/.well-known/*` and `/app/*`) the body is a FHIR `OperationOutcome` as Aidbox answers
//! ([`Error::to_fhir_response`]), with those members kept alongside.

use crate::http_util::{json_response, Response};
use crate::platform::BackendError;
use serde_json::json;
use std::fmt;

/// The realm we name in `WWW-Authenticate` challenges.
pub const REALM: &str = "edge-authorizer";

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// RFC 6749 5.2 `invalid_request`: a parameter is missing, repeated or malformed.
    InvalidRequest(String),
    /// RFC 6749 5.2 `invalid_client`: client authentication failed. 401 with a Basic challenge.
    InvalidClient(String),
    /// RFC 6749 5.2 `invalid_grant`: wrong user credentials, expired or reused grant.
    InvalidGrant(String),
    /// RFC 6749 5.2 `unauthorized_client`: the client may not use this grant type.
    UnauthorizedClient(String),
    /// RFC 6749 5.2 `unsupported_grant_type`.
    UnsupportedGrantType(String),
    /// RFC 6749 5.2 `invalid_scope`.
    InvalidScope(String),
    /// RFC 8707 2 `invalid_target`: an `audience` this client may not ask for.
    InvalidTarget(String),
    /// RFC 6750 3: no credentials at all on a protected path. 401 with a bare Bearer challenge.
    MissingCredentials,
    /// RFC 6750 3.1 `invalid_token`: a bearer token that is malformed, expired, revoked or
    /// not ours. 401 with `error="invalid_token"` in the challenge.
    InvalidToken(String),
    /// Basic credentials on a protected path that do not check out. 401 with a Basic challenge.
    InvalidBasic(String),
    /// Authenticated, but no AccessPolicy allows the request. 403.
    Forbidden(String),
    /// RFC 6750 3.1 `insufficient_scope`: a SMART scope policy denied a bearer token that
    /// would pass with the scope held here (the scopes this request needs). 403 with
    /// `error="insufficient_scope", scope="..."` in the challenge.
    InsufficientScope(String),
    /// 404 on the admin API or the demo origin.
    NotFound(String),
    /// 409: the write conflicts with another record (an email already taken).
    Conflict(String),
    /// 405; the value lists the allowed methods.
    MethodNotAllowed(&'static str),
    /// A resource body that does not validate: 422 naming the field.
    Validation { field: String, message: String },
    /// 413: the body is larger than the Worker buffers.
    PayloadTooLarge(usize),
    /// 415 on the admin API: only JSON is accepted.
    UnsupportedMediaType(String),
    /// A storage, crypto or outbound backend failed or timed out: 503 with `Retry-After`,
    /// nothing written.
    Unavailable(String),
    /// 429: too many failed sign-ins for this user or from this address (login throttling);
    /// `retry_after` seconds until the next try is looked at.
    TooManyRequests { retry_after: i64 },
    /// 502: the origin could not be reached or broke off its answer.
    BadGateway(String),
    /// 504: the origin did not answer in time.
    GatewayTimeout(String),
    /// A bug or a misconfiguration on our side: logged, 500 with no detail.
    Internal(String),
    /// RFC 9449 7 and 8: a DPoP proof refused (`invalid_dpop_proof`) or without a fresh
    /// server nonce (`use_dpop_nonce`; `nonce` goes out in `DPoP-Nonce`). At the token
    /// endpoint 400 (RFC 9449 5); on the API (`api`) 401 with a `DPoP` challenge (7.1).
    Dpop {
        api: bool,
        error: &'static str,
        description: String,
        nonce: Option<String>,
    },
}

/// The `DPoP` challenge beside Bearer's (RFC 9449 7.1): the proof algorithms we accept.
pub fn dpop_challenge() -> String {
    format!("DPoP algs=\"{}\"", crate::oauth::dpop::ALGS.join(" "))
}

impl Error {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Error::InvalidRequest(_)
            | Error::InvalidGrant(_)
            | Error::UnauthorizedClient(_)
            | Error::UnsupportedGrantType(_)
            | Error::InvalidScope(_)
            | Error::InvalidTarget(_) => 400,
            Error::InvalidClient(_)
            | Error::MissingCredentials
            | Error::InvalidToken(_)
            | Error::InvalidBasic(_) => 401,
            Error::Forbidden(_) | Error::InsufficientScope(_) => 403,
            Error::NotFound(_) => 404,
            Error::MethodNotAllowed(_) => 405,
            Error::Conflict(_) => 409,
            Error::PayloadTooLarge(_) => 413,
            Error::UnsupportedMediaType(_) => 415,
            Error::Validation { .. } => 422,
            Error::TooManyRequests { .. } => 429,
            Error::Internal(_) => 500,
            Error::Dpop { api: true, .. } => 401,
            Error::Dpop { api: false, .. } => 400,
            Error::BadGateway(_) => 502,
            Error::Unavailable(_) => 503,
            Error::GatewayTimeout(_) => 504,
        }
    }

    /// The RFC error code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) => "invalid_request",
            Error::InvalidClient(_) => "invalid_client",
            Error::InvalidGrant(_) => "invalid_grant",
            Error::UnauthorizedClient(_) => "unauthorized_client",
            Error::UnsupportedGrantType(_) => "unsupported_grant_type",
            Error::InvalidScope(_) => "invalid_scope",
            Error::InvalidTarget(_) => "invalid_target",
            Error::MissingCredentials => "unauthorized",
            Error::InvalidToken(_) => "invalid_token",
            Error::InvalidBasic(_) => "invalid_client",
            Error::Forbidden(_) => "forbidden",
            Error::InsufficientScope(_) => "insufficient_scope",
            Error::NotFound(_) => "not_found",
            Error::MethodNotAllowed(_) => "method_not_allowed",
            Error::Conflict(_) => "conflict",
            Error::Validation { .. } => "invalid_resource",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::UnsupportedMediaType(_) => "unsupported_media_type",
            Error::Unavailable(_) => "temporarily_unavailable",
            // RFC 8628 3.5's "slow down": the closest registered OAuth code for "wait, then retry".
            Error::TooManyRequests { .. } => "slow_down",
            Error::BadGateway(_) => "bad_gateway",
            Error::GatewayTimeout(_) => "gateway_timeout",
            Error::Internal(_) => "server_error",
            Error::Dpop { error, .. } => error,
        }
    }

    fn description(&self) -> String {
        match self {
            Error::InvalidRequest(d)
            | Error::InvalidClient(d)
            | Error::InvalidGrant(d)
            | Error::UnauthorizedClient(d)
            | Error::UnsupportedGrantType(d)
            | Error::InvalidScope(d)
            | Error::InvalidTarget(d)
            | Error::InvalidToken(d)
            | Error::InvalidBasic(d)
            | Error::Forbidden(d)
            | Error::NotFound(d)
            | Error::Conflict(d)
            | Error::UnsupportedMediaType(d) => d.clone(),
            Error::MissingCredentials => "credentials are required".into(),
            Error::InsufficientScope(scope) => {
                format!("the token's scopes do not allow this request; it needs: {scope}")
            }
            Error::MethodNotAllowed(allow) => format!("method not allowed here; allowed: {allow}"),
            Error::Validation { field, message } => format!("{field}: {message}"),
            Error::PayloadTooLarge(limit) => format!("request body is larger than {limit} bytes"),
            // The internal reason goes to the log, never to the client.
            Error::Unavailable(_) => "a backing service is unavailable; retry later".into(),
            Error::TooManyRequests { retry_after } => {
                format!("too many failed sign-in attempts; retry in {retry_after} seconds")
            }
            Error::BadGateway(_) => "the origin server could not be reached".into(),
            Error::GatewayTimeout(_) => "the origin server did not answer in time".into(),
            Error::Internal(_) => "internal error".into(),
            Error::Dpop { description, .. } => description.clone(),
        }
    }

    /// The wire response: status, RFC-shaped JSON body, challenge and caching headers.
    pub fn to_response(&self) -> Response {
        let mut body = json!({
            "error": self.code(),
            "error_description": self.description(),
        });
        if let Error::Validation { field, .. } = self {
            body["field"] = json!(field);
        }
        let mut resp = json_response(self.status(), &body);
        let headers = resp.headers_mut();
        // RFC 6749 5.2 and 6750 3: error responses from auth endpoints are not cached either.
        headers.insert("cache-control", http::HeaderValue::from_static("no-store"));
        let challenge = match self {
            Error::InvalidClient(_) | Error::InvalidBasic(_) => {
                Some(format!("Basic realm=\"{REALM}\", charset=\"UTF-8\""))
            }
            Error::MissingCredentials => Some(format!("Bearer realm=\"{REALM}\"")),
            Error::InvalidToken(d) => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                d.replace(['"', '\\'], "'")
            )),
            Error::InsufficientScope(scope) => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{}\"",
                scope.replace(['"', '\\'], "'")
            )),
            _ => None,
        };
        if let Some(c) = challenge {
            if let Ok(v) = http::HeaderValue::from_str(&c) {
                headers.insert("www-authenticate", v);
            }
        }
        // RFC 9449 7.1: the DPoP scheme is offered beside Bearer when a token is refused, with
        // the error when a proof on the API was at fault; the nonce to use goes out in
        // `DPoP-Nonce` (8). (A request without credentials keeps its one Bearer challenge.)
        match self {
            Error::InvalidToken(_) => {
                if let Ok(v) = http::HeaderValue::from_str(&dpop_challenge()) {
                    headers.append("www-authenticate", v);
                }
            }
            Error::Dpop {
                api,
                error,
                description,
                nonce,
                ..
            } => {
                if *api {
                    let c = format!(
                        "{}, error=\"{error}\", error_description=\"{}\"",
                        dpop_challenge(),
                        description.replace(['"', '\\'], "'")
                    );
                    if let Ok(v) = http::HeaderValue::from_str(&c) {
                        headers.insert("www-authenticate", v);
                    }
                }
                if let Some(n) = nonce
                    .as_deref()
                    .and_then(|n| http::HeaderValue::from_str(n).ok())
                {
                    headers.insert("dpop-nonce", n);
                }
            }
            _ => {}
        }
        if let Error::MethodNotAllowed(allow) = self {
            headers.insert("allow", http::HeaderValue::from_static(allow));
        }
        match self {
            Error::Unavailable(_) | Error::BadGateway(_) | Error::GatewayTimeout(_) => {
                headers.insert("retry-after", http::HeaderValue::from_static("5"));
            }
            Error::TooManyRequests { retry_after } => {
                headers.insert(
                    "retry-after",
                    http::HeaderValue::from((*retry_after).max(1)),
                );
            }
            _ => {}
        }
        resp
    }

    /// The FHIR `IssueType` code of this error (<https://hl7.org/fhir/valueset-issue-type.html>).
    pub fn fhir_code(&self) -> &'static str {
        match self {
            Error::MissingCredentials
            | Error::InvalidToken(_)
            | Error::InvalidBasic(_)
            | Error::InvalidClient(_) => "login",
            Error::Forbidden(_) | Error::InsufficientScope(_) | Error::UnauthorizedClient(_) => {
                "forbidden"
            }
            Error::NotFound(_) => "not-found",
            Error::Conflict(_) => "conflict",
            Error::MethodNotAllowed(_)
            | Error::UnsupportedMediaType(_)
            | Error::UnsupportedGrantType(_) => "not-supported",
            Error::PayloadTooLarge(_) => "too-costly",
            Error::TooManyRequests { .. } => "throttled",
            Error::InvalidRequest(_)
            | Error::InvalidGrant(_)
            | Error::InvalidScope(_)
            | Error::InvalidTarget(_)
            | Error::Validation { .. } => "invalid",
            Error::Unavailable(_) | Error::BadGateway(_) | Error::GatewayTimeout(_) => "transient",
            Error::Internal(_) => "exception",
            Error::Dpop { api: true, .. } => "login",
            Error::Dpop { api: false, .. } => "invalid",
        }
    }

    /// The wire response on a FHIR path: a FHIR `OperationOutcome` as Aidbox answers (`id` and
    /// `issue[0].code` the issue type, severity `fatal`, the description in `diagnostics`;
    /// `expression` names the field of a validation error), with the RFC 6749 `error` and
    /// `error_description` members kept for clients that read those. Same status and headers
    /// as [`Error::to_response`]; `Content-Type: application/fhir+json` when the caller
    /// accepts it (`fhir_json`), else `application/json` (Aidbox's default).
    pub fn to_fhir_response(&self, fhir_json: bool) -> Response {
        let mut resp = self.to_response();
        let mut issue = json!({
            "severity": "fatal",
            "code": self.fhir_code(),
            "diagnostics": self.description(),
        });
        if let Error::Validation { field, .. } = self {
            issue["expression"] = json!([field]);
        }
        let mut body = json!({
            "resourceType": "OperationOutcome",
            "id": self.fhir_code(),
            "issue": [issue],
            "error": self.code(),
            "error_description": self.description(),
        });
        if let Error::Validation { field, .. } = self {
            body["field"] = json!(field);
        }
        *resp.body_mut() = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        if fhir_json {
            resp.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("application/fhir+json"),
            );
        }
        resp
    }

    /// The internal reason, for the log line of a 5xx.
    pub fn internal_reason(&self) -> Option<&str> {
        match self {
            Error::Unavailable(r)
            | Error::Internal(r)
            | Error::BadGateway(r)
            | Error::GatewayTimeout(r) => Some(r),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.description())?;
        if let Some(r) = self.internal_reason() {
            write!(f, " ({r})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        Error::Unavailable(e.0)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
