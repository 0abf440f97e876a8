//! Getting a pod's image onto the board, by its `imagePullPolicy` (Kubernetes'
//! defaults: `Always` for `:latest` or no tag, `IfNotPresent` otherwise).
//!
//! One deliberate difference from the kubelet: with `Always`, when the registry cannot be
//! reached but the image is already on the board, the local copy is used (with a warning)
//! instead of failing — boards must keep running their work while the uplink is down.
//!
//! `imagePullSecrets` work as in the kubelet: every login for the image's registry found
//! in the pod's docker-config Secrets is tried in order; with none, the registries file
//! decides. A missing or unreadable secret is logged and skipped, not fatal.

use std::time::SystemTime;

use super::status::StartFailure;
use super::Agent;
use crate::image::{normalize_reference, ImageInfo, PullOptions};
use crate::model::{docker_login, Object, Pod, RegistryLogin};

fn failure(reason: &str, message: String) -> StartFailure {
    StartFailure {
        reason: reason.to_owned(),
        message,
        failures: 0,
        retry_at: SystemTime::UNIX_EPOCH,
    }
}

/// The policy Kubernetes applies when a container names none.
pub fn default_pull_policy(reference: &str) -> &'static str {
    if reference.contains("@sha256:") {
        return "IfNotPresent";
    }
    let last = reference.rsplit('/').next().unwrap_or(reference);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

pub fn ensure_image(
    agent: &Agent,
    pod: &Pod,
    reference: &str,
    policy: Option<&str>,
) -> Result<ImageInfo, StartFailure> {
    let policy = policy.unwrap_or_else(|| default_pull_policy(reference));
    let local = agent
        .images
        .resolve(reference)
        .map_err(|e| failure("InvalidImageName", e.to_string()))?;
    match (policy, local) {
        ("Never", Some(image)) | ("IfNotPresent", Some(image)) => Ok(image),
        ("Never", None) => Err(failure(
            "ErrImageNeverPull",
            format!("container image {reference:?} is not present with pull policy of Never"),
        )),
        (_, local) => {
            log::info!("pulling image {reference}");
            match pull_with_secrets(agent, pod, reference) {
                Ok(image) => {
                    log::info!("pulled image {reference} ({})", image.digest);
                    Ok(image)
                }
                Err(err) => match local {
                    Some(image) => {
                        log::warn!("cannot pull {reference} ({err}); using the copy on this board");
                        Ok(image)
                    }
                    None => Err(failure(
                        "ErrImagePull",
                        format!("failed to pull image {reference:?}: {err}"),
                    )),
                },
            }
        }
    }
}

/// Pulls with each login the pod's pull secrets hold for the image's registry until one
/// works, or with the registries file's settings when they hold none.
fn pull_with_secrets(
    agent: &Agent,
    pod: &Pod,
    reference: &str,
) -> Result<ImageInfo, crate::image::ImageError> {
    let logins = pull_secret_logins(agent, pod, reference);
    let attempts: Vec<Option<(String, String)>> = if logins.is_empty() {
        vec![None]
    } else {
        logins
            .into_iter()
            .map(|l| Some((l.username, l.password)))
            .collect()
    };
    let mut last = None;
    for credentials in attempts {
        let options = PullOptions {
            credentials,
            ..PullOptions::default()
        };
        match agent
            .images
            .pull(reference, &agent.registries, &options, &|_| {})
        {
            Ok(image) => return Ok(image),
            Err(err) => last = Some(err),
        }
    }
    Err(last.expect("at least one pull attempt was made"))
}

/// Logins for the registry of `reference` from the pod's `imagePullSecrets`, in order.
fn pull_secret_logins(agent: &Agent, pod: &Pod, reference: &str) -> Vec<RegistryLogin> {
    if pod.spec.image_pull_secrets.is_empty() {
        return Vec::new();
    }
    let Some(registry) = normalize_reference(reference)
        .ok()
        .and_then(|canonical| canonical.split_once('/').map(|(r, _)| r.to_owned()))
    else {
        return Vec::new();
    };
    let namespace = pod.metadata.namespace_or_empty();
    let mut logins = Vec::new();
    for wanted in &pod.spec.image_pull_secrets {
        let stored = agent.store().get("Secret", namespace, &wanted.name);
        let secret = match stored.map(|r| r.map(|r| Object::from_json(r.object))) {
            Ok(Some(Ok(Object::Secret(secret)))) => secret,
            Ok(None) => {
                log::warn!(
                    "pod {namespace}/{}: image pull secret {:?} not found; pulling without it",
                    pod.metadata.name,
                    wanted.name
                );
                continue;
            }
            Ok(Some(_)) | Err(_) => {
                log::warn!("secret {namespace}/{} is unreadable; skipped", wanted.name);
                continue;
            }
        };
        if let Some(login) = docker_login(&secret, &registry) {
            logins.push(login);
        }
    }
    logins
}

#[cfg(test)]
mod tests {
    use super::default_pull_policy;

    #[test]
    fn defaults_follow_kubernetes() {
        assert_eq!(default_pull_policy("busybox"), "Always");
        assert_eq!(default_pull_policy("busybox:latest"), "Always");
        assert_eq!(default_pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(
            default_pull_policy("localhost:5000/busybox:1.35"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("busybox@sha256:abcd"), "IfNotPresent");
    }
}
