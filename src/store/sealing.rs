//! Secrets at rest: the objects of sealed kinds (Secrets, which also carry registry
//! credentials) are stored encrypted with AES-256-GCM, so a copy of `berth.db` or its WAL
//! (a backup, a pulled SD card without the key file) does not give their values away.
//!
//! The keys live in a key file of their own (`<id> <base64 of 32 bytes>` per line, `#`
//! comments), created with mode 0600 on first start. The first key seals; every key in the
//! file unseals, which is how a key is rotated, as with Kubernetes' encryption
//! configuration: put a new key first, restart (rows sealed with another key, or stored
//! before sealing existed, are sealed again with the first key when the store opens),
//! then remove the old key.
//!
//! A sealed row's object column reads `sealed:v1:<key id>:<base64(nonce | ciphertext)>`.
//! The row's kind, namespace and name are the AEAD's associated data, so a sealed value
//! moved to another row does not unseal.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use super::{Key, StoreError};
use crate::model::base64;

const PREFIX: &str = "sealed:v1:";
const KEY_BYTES: usize = 32;
/// Kinds whose objects are sealed.
/// Secrets, and what coordinators sharing etcd keep there for each other: the CA's key
/// and the admin credential (internal kinds the API never serves).
const SEALED_KINDS: &[&str] = &["Secret", "BerthCertificateAuthority", "BerthAdminConfig"];

/// Seals and unseals the objects of sealed kinds; without keys it stores them as they are
/// (in-memory stores of unit tests).
pub struct Sealer {
    /// The first key seals.
    keys: Vec<SealKey>,
}

struct SealKey {
    id: String,
    key: LessSafeKey,
}

impl Sealer {
    /// A sealer that stores everything in clear: for throwaway stores only.
    pub fn plaintext() -> Sealer {
        Sealer { keys: Vec::new() }
    }

    /// Reads the key file at `path`, creating it with one new key if it does not exist.
    /// A key file that others may read or that another user owns is refused, as ssh
    /// refuses such private keys.
    pub fn load_or_create(path: &Path) -> Result<Sealer, StoreError> {
        let fail = |reason: String| StoreError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        if !path.exists() {
            create_key_file(path).map_err(|e| fail(format!("cannot create it: {e}")))?;
            log::info!("created the secrets encryption key {}", path.display());
        }
        let meta = fs::metadata(path).map_err(|e| fail(e.to_string()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(fail(format!(
                "its permissions {:04o} are too open; it must be readable by its owner only \
                 (chmod 600)",
                meta.permissions().mode() & 0o7777
            )));
        }
        if meta.uid() != nix::unistd::geteuid().as_raw() {
            return Err(fail(format!(
                "it is owned by uid {}, not by this process's user",
                meta.uid()
            )));
        }
        let text = fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        Sealer::from_key_text(&text).map_err(fail)
    }

    /// Parses a key file's text.
    pub fn from_key_text(text: &str) -> Result<Sealer, String> {
        let mut keys: Vec<SealKey> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = || format!("line {}", index + 1);
            let (id, encoded) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("{}: expected `<id> <base64 key>`", at()))?;
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(format!(
                    "{}: key id {id:?} must be letters, digits and -",
                    at()
                ));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(format!("{}: key id {id:?} appears twice", at()));
            }
            let bytes = base64::decode_strict(encoded.trim())
                .filter(|b| b.len() == KEY_BYTES)
                .ok_or_else(|| format!("{}: the key must be {KEY_BYTES} bytes in base64", at()))?;
            let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| format!("{}: not an AES-256 key", at()))?;
            keys.push(SealKey {
                id: id.to_owned(),
                key: LessSafeKey::new(unbound),
            });
        }
        if keys.is_empty() {
            return Err("it holds no key".to_owned());
        }
        Ok(Sealer { keys })
    }

    fn applies_to(&self, kind: &str) -> bool {
        !self.keys.is_empty() && SEALED_KINDS.contains(&kind)
    }

    /// The text to store for the object `json` of `key`.
    pub(crate) fn seal(&self, key: &Key, json: String) -> Result<String, StoreError> {
        let Some(first) = self.keys.first().filter(|_| self.applies_to(&key.kind)) else {
            return Ok(json);
        };
        let mut nonce = [0u8; NONCE_LEN];
        crate::support::random::fill(&mut nonce).map_err(|_| StoreError::Sealing {
            what: describe(key),
            reason: "no random bytes for a nonce".to_owned(),
        })?;
        let mut sealed = json.into_bytes();
        first
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data(key)),
                &mut sealed,
            )
            .map_err(|_| StoreError::Sealing {
                what: describe(key),
                reason: "encryption failed".to_owned(),
            })?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}:{}", first.id, base64::encode(&blob)))
    }

    /// The object JSON of a stored text: unsealed if sealed, as it is otherwise.
    pub(crate) fn unseal(&self, key: &Key, text: String) -> Result<String, StoreError> {
        let Some(rest) = text.strip_prefix(PREFIX) else {
            return Ok(text);
        };
        let corrupt = |reason: &str| StoreError::Corrupt {
            what: format!("stored {}", describe(key)),
            reason: reason.to_owned(),
        };
        let (id, encoded) = rest
            .split_once(':')
            .ok_or_else(|| corrupt("a sealed value without a key id"))?;
        let seal_key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| {
            corrupt(&format!(
                "it is sealed with key {id:?}, which the key file does not hold"
            ))
        })?;
        let blob = base64::decode_strict(encoded)
            .filter(|b| b.len() >= NONCE_LEN)
            .ok_or_else(|| corrupt("a sealed value that is not base64"))?;
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| corrupt("a sealed value with a bad nonce"))?;
        let mut sealed = sealed.to_vec();
        let plain = seal_key
            .key
            .open_in_place(nonce, Aad::from(associated_data(key)), &mut sealed)
            .map_err(|_| corrupt("it does not unseal: tampered with, or sealed for another row"))?;
        String::from_utf8(plain.to_vec()).map_err(|_| corrupt("unsealed text is not UTF-8"))
    }

    /// Whether a stored text of `kind` should be written again: in clear but sealable, or
    /// sealed with a key other than the first.
    pub(crate) fn needs_reseal(&self, kind: &str, text: &str) -> bool {
        let Some(first) = self.keys.first().filter(|_| self.applies_to(kind)) else {
            return false;
        };
        !text.starts_with(&format!("{PREFIX}{}:", first.id))
    }

    /// The sealed kinds, for the reseal pass.
    pub(crate) fn sealed_kinds(&self) -> &'static [&'static str] {
        if self.keys.is_empty() {
            &[]
        } else {
            SEALED_KINDS
        }
    }
}

/// Kind, namespace and name, NUL-separated: binds a sealed value to its row.
fn associated_data(key: &Key) -> Vec<u8> {
    format!("{}\0{}\0{}", key.kind, key.namespace, key.name).into_bytes()
}

fn describe(key: &Key) -> String {
    format!("{} {}/{}", key.kind, key.namespace, key.name)
}

/// Writes a new key file with one random key, readable by its owner only.
fn create_key_file(path: &Path) -> std::io::Result<()> {
    let mut key = [0u8; KEY_BYTES];
    crate::support::random::fill(&mut key)
        .map_err(|_| std::io::Error::other("no random bytes for a key"))?;
    let id = format!(
        "key-{}",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
    );
    let text = format!(
        "# berth's key for Secrets at rest: `<id> <base64 AES-256 key>` per line.\n\
         # The first key seals; all keys unseal. See docs/security.md before editing.\n\
         {id} {}\n",
        base64::encode(&key)
    );
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "k1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
    const TWO: &str = "k2 HxwdHhscGRoZGBcWFRQTEhEQDw4NDAsKCQgHBgUEAwI=\n";

    fn secret_key() -> Key {
        Key::new("Secret", "default", "db")
    }

    #[test]
    fn a_sealed_secret_unseals_and_hides_its_value() {
        let sealer = Sealer::from_key_text(ONE).unwrap();
        let json = r#"{"data":{"password":"aHVudGVyMg=="}}"#.to_owned();
        let sealed = sealer.seal(&secret_key(), json.clone()).unwrap();
        assert!(sealed.starts_with("sealed:v1:k1:"), "{sealed}");
        assert!(!sealed.contains("aHVudGVyMg"));
        assert_eq!(sealer.unseal(&secret_key(), sealed).unwrap(), json);
    }

    #[test]
    fn other_kinds_and_keyless_stores_stay_in_clear() {
        let sealer = Sealer::from_key_text(ONE).unwrap();
        let pod = Key::new("Pod", "default", "web");
        assert_eq!(sealer.seal(&pod, "{}".into()).unwrap(), "{}");
        let plain = Sealer::plaintext();
        assert_eq!(plain.seal(&secret_key(), "{}".into()).unwrap(), "{}");
        assert!(!plain.needs_reseal("Secret", "{}"));
    }

    #[test]
    fn a_value_moved_to_another_row_or_changed_does_not_unseal() {
        let sealer = Sealer::from_key_text(ONE).unwrap();
        let sealed = sealer.seal(&secret_key(), "{}".into()).unwrap();
        let other = Key::new("Secret", "default", "other");
        assert!(sealer.unseal(&other, sealed.clone()).is_err());
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(sealer.unseal(&secret_key(), tampered).is_err());
    }

    #[test]
    fn rotation_unseals_with_any_key_and_reseals_with_the_first() {
        let old = Sealer::from_key_text(ONE).unwrap();
        let sealed = old.seal(&secret_key(), "{}".into()).unwrap();
        let rotated = Sealer::from_key_text(&format!("{TWO}{ONE}")).unwrap();
        assert!(rotated.needs_reseal("Secret", &sealed));
        assert_eq!(rotated.unseal(&secret_key(), sealed).unwrap(), "{}");
        let fresh = rotated.seal(&secret_key(), "{}".into()).unwrap();
        assert!(!rotated.needs_reseal("Secret", &fresh));
        assert!(rotated.needs_reseal("Secret", "{}"), "clear text is sealed");
        let err = Sealer::from_key_text(TWO)
            .unwrap()
            .unseal(&secret_key(), old.seal(&secret_key(), "{}".into()).unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("\"k1\""), "{err}");
    }

    #[test]
    fn bad_key_files_are_described() {
        for (text, expected) in [
            ("", "no key"),
            ("k1\n", "expected"),
            ("k1 c2hvcnQ=\n", "32 bytes"),
            (&format!("{ONE}{ONE}"), "twice"),
            (
                "k/1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                "letters",
            ),
        ] {
            let err = Sealer::from_key_text(text).err().unwrap_or_default();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_key_file_is_created_private_and_refused_when_open_to_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let first = Sealer::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = Sealer::load_or_create(&path).unwrap();
        let sealed = first.seal(&secret_key(), "{}".into()).unwrap();
        assert_eq!(again.unseal(&secret_key(), sealed).unwrap(), "{}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Sealer::load_or_create(&path).err().unwrap();
        assert!(err.to_string().contains("too open"), "{err}");
    }
}
