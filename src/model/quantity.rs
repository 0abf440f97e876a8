//! Kubernetes resource quantities (`250m`, `0.5`, `64Mi`, `1e3`), converted exactly into
//! the integer units the runtime uses: millicores for CPU and bytes for memory.

/// CPU in thousandths of a core: `"250m"` → 250, `"0.5"` → 500, `"2"` → 2000.
/// Values finer than a millicore round up, as Kubernetes does. At most [`MAX_CPU_MILLIS`].
pub fn parse_cpu_millis(s: &str) -> Result<u64, String> {
    let bound = format!("{} cores", MAX_CPU_MILLIS / 1000);
    parse_bounded(s, 3, MAX_CPU_MILLIS, &bound)
}

/// Memory in bytes: `"64Mi"` → 67108864, `"1G"` → 1000000000, `"0.5Gi"` → 536870912.
/// Fractions of a byte round up. At most [`MAX_MEMORY_BYTES`].
pub fn parse_memory_bytes(s: &str) -> Result<u64, String> {
    let bound = format!("{MAX_MEMORY_BYTES} bytes");
    parse_bounded(s, 0, MAX_MEMORY_BYTES, &bound)
}

/// A count of an extended resource (`example.com/dongle: 1`): a whole number, as
/// Kubernetes requires of them; `1000m` is 1, `500m` is refused.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let millis = parse_bounded(s, 3, MAX_MEMORY_BYTES, &format!("{MAX_MEMORY_BYTES}"))?;
    if millis % 1000 != 0 {
        return Err(format!("invalid value {s:?}: must be an integer"));
    }
    Ok(millis / 1000)
}

/// Whether `name` is an extended resource (`example.com/dongle`, `berth.dev/camera`): a
/// qualified name with a domain outside Kubernetes' own, as Kubernetes defines them.
pub fn is_extended_resource(name: &str) -> bool {
    let Some((prefix, _)) = name.split_once('/') else {
        return false;
    };
    let kubernetes = ["kubernetes.io", "k8s.io"]
        .iter()
        .any(|domain| prefix == *domain || prefix.ends_with(&format!(".{domain}")));
    !kubernetes && !name.starts_with("requests.") && crate::model::validate_label_key(name).is_ok()
}

/// The largest memory quantity: Kubernetes caps every quantity at 2^63-1 (an int64), and
/// the runtime hands memory limits to the kernel as one.
pub const MAX_MEMORY_BYTES: u64 = i64::MAX as u64;

/// The largest CPU quantity, 10^8 cores. Kubernetes allows 2^63-1 millicores, but a CPU
/// limit becomes a CFS quota of 100 µs per millicore (a 100 ms period), and the kernel
/// refuses quotas above 2^44-1 µs (about 1.76 × 10^8 cores): a larger limit could not be
/// enforced, and its quota would wrap an int64 from about 9.2 × 10^13 cores on.
pub const MAX_CPU_MILLIS: u64 = 100_000_000 * 1000;

/// Whether `s` is a quantity Kubernetes accepts (`100m`, `64Mi`, `1e3`, `0.5`).
pub fn is_quantity(s: &str) -> bool {
    parse_quantity(s).is_ok()
}

/// Whether `a` and `b` are valid quantities of the same value (`1000m` and `1`, `1Ki` and
/// `1024`), compared exactly: what a `resourceFieldRef` divisor is checked with.
pub fn same_quantity(a: &str, b: &str) -> bool {
    let (Ok(a), Ok(b)) = (parse_quantity(a), parse_quantity(b)) else {
        return false;
    };
    // Both as integers in units of the smaller power of ten. Equal values scale to the
    // same integer, so when one overflows they differ or both overflow (then they are
    // far beyond anything compared here).
    let unit = a.decimal_exp.min(b.decimal_exp);
    let scaled = |q: &Quantity| {
        let power = u32::try_from(q.decimal_exp - unit).ok()?;
        q.mantissa
            .checked_mul(1u128.checked_shl(q.binary_exp)?)?
            .checked_mul(10u128.checked_pow(power)?)
    };
    matches!((scaled(&a), scaled(&b)), (Some(x), Some(y)) if x == y)
}

/// Largest decimal exponent accepted; far beyond anything meaningful, small enough that
/// the arithmetic below cannot misbehave.
const MAX_EXPONENT: i32 = 60;

/// `mantissa × 2^binary_exp × 10^decimal_exp`, exact.
struct Quantity {
    mantissa: u128,
    decimal_exp: i32,
    binary_exp: u32,
}

/// The quantity in units of `10^-unit_exp`, at most `max` (`bound` in words): any value
/// above it, however large, gets the same message.
fn parse_bounded(s: &str, unit_exp: i32, max: u64, bound: &str) -> Result<u64, String> {
    let value = parse_quantity(s).and_then(|q| q.to_units(unit_exp));
    match value {
        Ok(value) if value <= max => Ok(value),
        Ok(_) | Err(Error::TooLarge) => Err(format!(
            "quantity {s:?} is too large: must be less than or equal to {bound}"
        )),
        Err(Error::Invalid) => Err(format!("invalid quantity {s:?}")),
    }
}

enum Error {
    Invalid,
    TooLarge,
}

fn parse_quantity(s: &str) -> Result<Quantity, Error> {
    // Negative quantities are legal Kubernetes syntax but meaningless for requests and
    // limits, so only an explicit `+` sign is accepted.
    let unsigned = s.strip_prefix('+').unwrap_or(s);
    let number_len = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);

    let mut mantissa: u128 = 0;
    let mut digits = 0usize;
    let mut fraction_digits = 0i32;
    let mut seen_point = false;
    for c in number.chars() {
        if c == '.' {
            if seen_point {
                return Err(Error::Invalid);
            }
            seen_point = true;
            continue;
        }
        let digit = u128::from(c.to_digit(10).ok_or(Error::Invalid)?);
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(digit))
            .ok_or(Error::TooLarge)?;
        digits += 1;
        if seen_point {
            fraction_digits += 1;
        }
    }
    if digits == 0 {
        return Err(Error::Invalid);
    }

    let (suffix_decimal, binary_exp) = parse_suffix(suffix).ok_or(Error::Invalid)?;
    Ok(Quantity {
        mantissa,
        decimal_exp: suffix_decimal - fraction_digits,
        binary_exp,
    })
}

/// Returns (power of ten, power of two) for a suffix, or `None` when it is not one.
fn parse_suffix(suffix: &str) -> Option<(i32, u32)> {
    let known = match suffix {
        "" => Some((0, 0)),
        "n" => Some((-9, 0)),
        "u" => Some((-6, 0)),
        "m" => Some((-3, 0)),
        "k" => Some((3, 0)),
        "M" => Some((6, 0)),
        "G" => Some((9, 0)),
        "T" => Some((12, 0)),
        "P" => Some((15, 0)),
        "E" => Some((18, 0)),
        "Ki" => Some((0, 10)),
        "Mi" => Some((0, 20)),
        "Gi" => Some((0, 30)),
        "Ti" => Some((0, 40)),
        "Pi" => Some((0, 50)),
        "Ei" => Some((0, 60)),
        _ => None,
    };
    if known.is_some() {
        return known;
    }
    // Scientific notation: `1e3`, `5E-3`, `2e+2`.
    let exponent = suffix.strip_prefix(['e', 'E'])?;
    let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let value: i32 = exponent.parse().ok()?;
    (value.abs() <= MAX_EXPONENT).then_some((value, 0))
}

impl Quantity {
    /// The value in units of `10^-unit_exp`, rounded up.
    fn to_units(&self, unit_exp: i32) -> Result<u64, Error> {
        let numerator = self
            .mantissa
            .checked_mul(1u128 << self.binary_exp)
            .ok_or(Error::TooLarge)?;
        let exp = self.decimal_exp + unit_exp;
        let value = if exp >= 0 {
            10u128
                .checked_pow(exp as u32)
                .and_then(|p| numerator.checked_mul(p))
                .ok_or(Error::TooLarge)?
        } else {
            match 10u128.checked_pow(exp.unsigned_abs()) {
                Some(denominator) => numerator.div_ceil(denominator),
                // The denominator exceeds any u128 numerator: a tiny non-zero value.
                None => u128::from(numerator > 0),
            }
        };
        u64::try_from(value).map_err(|_| Error::TooLarge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        let valid = [
            ("250m", 250),
            ("0.5", 500),
            ("2", 2000),
            ("1.5", 1500),
            ("0", 0),
            ("+1", 1000),
            (".1", 100),
            ("0.0001", 1),
            ("100000n", 1),
            ("1e3", 1_000_000),
            ("1k", 1_000_000),
            ("5E-3", 5),
        ];
        for (text, millis) in valid {
            assert_eq!(parse_cpu_millis(text), Ok(millis), "{text}");
        }
        for text in [
            "", "m", "-1", "-250m", "abc", "1.2.3", "1 ", " 1", "1x", "1e", "1e99", "1.5.m",
        ] {
            assert_eq!(
                parse_cpu_millis(text),
                Err(format!("invalid quantity {text:?}")),
                "{text}"
            );
        }
    }

    #[test]
    fn memory_quantities() {
        let valid = [
            ("64Mi", 64 << 20),
            ("1Gi", 1 << 30),
            ("0.5Gi", 1 << 29),
            ("1G", 1_000_000_000),
            ("128974848", 128_974_848),
            ("129e6", 129_000_000),
            ("129M", 129_000_000),
            ("123Ki", 123 * 1024),
            ("1Ei", 1 << 60),
            ("1.5", 2),
            ("100m", 1),
        ];
        for (text, bytes) in valid {
            assert_eq!(parse_memory_bytes(text), Ok(bytes), "{text}");
        }
        for text in ["64Mb", "", "-1", "1KI", "Mi", "1K", "0x10", "1 Gi"] {
            assert_eq!(
                parse_memory_bytes(text),
                Err(format!("invalid quantity {text:?}")),
                "{text}"
            );
        }
        assert!(parse_memory_bytes("100Ei")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn same_quantity_compares_values_exactly() {
        for (a, b) in [
            ("1", "1000m"),
            ("1m", "0.001"),
            ("1k", "1000"),
            ("1Ki", "1024"),
            ("1Ei", "1152921504606846976"),
            ("1E", "1e18"),
            ("0", "0m"),
        ] {
            assert!(same_quantity(a, b), "{a} = {b}");
        }
        for (a, b) in [
            ("1", "1m"),
            ("1k", "1Ki"),
            ("1G", "999999999.5"),
            ("1", "1x"),
            ("", ""),
        ] {
            assert!(!same_quantity(a, b), "{a} != {b}");
        }
    }

    #[test]
    fn quantities_have_bounds() {
        // Kubernetes' bound: 2^63-1 bytes is the largest memory quantity.
        assert_eq!(
            parse_memory_bytes("9223372036854775807"),
            Ok(i64::MAX as u64)
        );
        assert_eq!(
            parse_memory_bytes("9223372036854775808"),
            Err(
                "quantity \"9223372036854775808\" is too large: must be less than or \
                 equal to 9223372036854775807 bytes"
                    .to_owned()
            )
        );
        assert!(parse_memory_bytes("8Ei").is_err(), "2^63 bytes");
        assert_eq!(parse_memory_bytes("7Ei"), Ok(7 << 60));
        // Too many digits for any integer type: too large, not garbage.
        let digits = "9".repeat(60);
        assert!(parse_memory_bytes(&digits)
            .unwrap_err()
            .starts_with(&format!("quantity {digits:?} is too large: ")));

        // CPU: what a CFS quota can enforce.
        assert_eq!(parse_cpu_millis("1e8"), Ok(100_000_000_000));
        assert_eq!(parse_cpu_millis("100M"), Ok(MAX_CPU_MILLIS));
        for text in ["1e15", "100000001", "1E", "100000000001m", "1e30"] {
            assert_eq!(
                parse_cpu_millis(text),
                Err(format!(
                    "quantity {text:?} is too large: must be less than or equal to 100000000 cores"
                )),
                "{text}"
            );
        }
    }
}
