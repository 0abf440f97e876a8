//! The one source of random bytes: the operating system's generator, through `ring`
//! (already linked for TLS), for secrets, nonces, serial numbers and generated names.

use ring::rand::{SecureRandom, SystemRandom};

/// The operating system's random number generator failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError;

/// Fills `buffer` with random bytes.
pub fn fill(buffer: &mut [u8]) -> Result<(), RandomError> {
    SystemRandom::new().fill(buffer).map_err(|_| RandomError)
}

/// `N` random bytes.
pub fn bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut buffer = [0u8; N];
    fill(&mut buffer)?;
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_draws_differ() {
        let (a, b) = (bytes::<16>().unwrap(), bytes::<16>().unwrap());
        assert_ne!(a, b, "16 random bytes repeated");
    }
}
