//! Getting a pod's image onto the board, by its `imagePullPolicy` (Kubernetes'
//! defaults: `Always` for `:latest` or no tag, `IfNotPresent` otherwise).
//!
//! One deliberate difference from the kubelet: with `Always`, when the registry cannot be
//! reached but the image is already on the board, the local copy is used (with a warning)
//! instead of failing — boards must keep running their work while the uplink is down.

use std::time::SystemTime;

use super::status::StartFailure;
use super::Agent;
use crate::image::{ImageInfo, PullOptions};

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
            let options = PullOptions::default();
            match agent
                .images
                .pull(reference, &agent.registries, &options, &|_| {})
            {
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
