//! The API's one error: a request refused with an HTTP code, a Kubernetes reason and a
//! message, sent as a `Status` object ([`Refusal::response`]). Both daemons' servers,
//! admission ([`super::apply`]) and the handlers behind them return it, so a client sees
//! the same reasons whichever daemon it talks to.

use super::http::Response;
use crate::store::StoreError;

/// A failure to show to the client: HTTP code, Kubernetes reason and message.
#[derive(Debug)]
pub struct Refusal {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl Refusal {
    /// The `Status` response that carries this refusal.
    pub fn response(&self) -> Response {
        Response::status_error(self.code, self.reason, &self.message)
    }
}

impl From<StoreError> for Refusal {
    fn from(err: StoreError) -> Refusal {
        match err {
            StoreError::Conflict { key } => conflict(format!(
                "Operation cannot be fulfilled on {} {:?}: the object has been modified; \
                 please apply your changes to the latest version and try again",
                crate::model::Kind::from_kind_name(&key.kind)
                    .map(super::patch::resource_name)
                    .unwrap_or_else(|| key.kind.to_lowercase()),
                key.name
            )),
            StoreError::Invalid { reason } => bad_request(reason),
            StoreError::Etcd { .. } | StoreError::Contended { .. } => {
                refusal(503, "ServiceUnavailable", format!("store: {err}"))
            }
            err => internal(format!("store: {err}")),
        }
    }
}

/// A refusal with any code and reason; the functions below name the common ones.
pub fn refusal(code: u16, reason: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        reason,
        message: message.into(),
    }
}

/// 400 BadRequest: the request itself is malformed (path, query, body).
pub fn bad_request(message: impl Into<String>) -> Refusal {
    refusal(400, "BadRequest", message)
}

/// 403 Forbidden: understood, but not allowed (to this subject, or by admission).
pub fn forbidden(message: impl Into<String>) -> Refusal {
    refusal(403, "Forbidden", message)
}

/// 404 NotFound, e.g. `pods "web" not found`.
pub fn not_found(message: impl Into<String>) -> Refusal {
    refusal(404, "NotFound", message)
}

/// 405 MethodNotAllowed: `{method} is not supported on {what}`.
pub fn method_not_allowed(method: &str, what: &str) -> Refusal {
    refusal(
        405,
        "MethodNotAllowed",
        format!("{method} is not supported on {what}"),
    )
}

/// 409 Conflict: the object's current state does not allow the change.
pub fn conflict(message: impl Into<String>) -> Refusal {
    refusal(409, "Conflict", message)
}

/// 422 Invalid: the object or field given is not valid.
pub fn invalid(message: impl Into<String>) -> Refusal {
    refusal(422, "Invalid", message)
}

/// 500 InternalError: the server failed, not the request.
pub fn internal(err: impl std::fmt::Display) -> Refusal {
    refusal(500, "InternalError", err.to_string())
}

#[cfg(test)]
mod tests {
    use super::{method_not_allowed, not_found, Refusal};
    use crate::api::http::Body;
    use crate::store::StoreError;

    #[test]
    fn a_refusal_is_sent_as_a_kubernetes_status() {
        let response = not_found("pods \"web\" not found").response();
        assert_eq!(response.status, 404);
        let Body::Bytes(bytes) = response.body else {
            panic!("a Status is a sized body");
        };
        let status: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["code"], 404);
        assert_eq!(status["message"], "pods \"web\" not found");
    }

    #[test]
    fn store_errors_are_internal_and_say_so() {
        let corrupt = StoreError::Corrupt {
            what: "Pod default/web".to_owned(),
            reason: "not JSON".to_owned(),
        };
        let refusal = Refusal::from(corrupt);
        assert_eq!((refusal.code, refusal.reason), (500, "InternalError"));
        assert_eq!(
            refusal.message,
            "store: Pod default/web is corrupt: not JSON"
        );
        let refusal = method_not_allowed("PUT", "/api/v1/pods");
        assert_eq!((refusal.code, refusal.reason), (405, "MethodNotAllowed"));
        assert_eq!(refusal.message, "PUT is not supported on /api/v1/pods");
    }
}
