//! Standard base64 (RFC 4648 with padding) for Secret data, HTTP Basic auth, Docker's
//! `auth` field, sealed values and PEM: the `base64` crate (already linked through ureq
//! and rcgen), with the two decoding rules berth needs named once here.

use ::base64::alphabet;
use ::base64::engine::general_purpose::{GeneralPurpose, PAD_INDIFFERENT, STANDARD};
use ::base64::Engine;

/// Padding optional and non-zero trailing bits tolerated: what hand-written config
/// files (Docker's `auth`) and older tools produce.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    PAD_INDIFFERENT.with_decode_allow_trailing_bits(true),
);

/// Padded standard base64.
pub fn encode(input: &[u8]) -> String {
    STANDARD.encode(input)
}

/// Decodes padded or unpadded base64; `None` on any invalid character.
pub fn decode(input: &str) -> Option<Vec<u8>> {
    LENIENT.decode(input).ok()
}

/// Decodes only canonical padded base64, as the Kubernetes API server requires for
/// Secret and ConfigMap `data`: re-encoding must give back the same text (so no missing
/// padding and no non-zero trailing bits).
pub fn decode_strict(input: &str) -> Option<Vec<u8>> {
    STANDARD.decode(input).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(encode(plain.as_bytes()), encoded);
            assert_eq!(decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(decode("Zm9vYg").unwrap(), b"foob");
        assert!(decode("Zm9v!").is_none());
        assert_eq!(decode_strict("Zm9vYg==").unwrap(), b"foob");
        assert!(decode_strict("Zm9vYg").is_none(), "unpadded");
        assert!(
            decode_strict("Zm9vYh==").is_none(),
            "non-zero trailing bits"
        );
        assert!(decode_strict("Zm 9v").is_none());
    }

    #[test]
    fn strict_accepts_exactly_what_encode_produces() {
        assert_eq!(encode(&[0xfb, 0xff]), "+/8=");
        for text in ["Zg==", "Zm8=", "", "+/8="] {
            let bytes = decode_strict(text).unwrap();
            assert_eq!(encode(&bytes), text);
        }
        for text in ["Zg", "Zg=", "Zg===", "Zh==", "Z", "Zm9v\n", "-_8="] {
            assert!(decode_strict(text).is_none(), "{text:?}");
        }
        // The lenient rule still takes a missing pad and stray trailing bits.
        assert_eq!(decode("Zh").unwrap(), b"f");
        assert!(decode("Z").is_none());
    }
}
