//! The checks the vendored libcontainer and oci-spec make by hand instead of with the
//! regex crate (vendor/*-no-regex.patch), against the regular expressions they replaced:
//! for every short input over an alphabet of the characters that matter, both accept
//! the same inputs and find the same tokens.

use std::collections::HashMap;

use oci_spec::runtime::{ExecCPUAffinity, ExecCPUAffinityBuilder};
use regex::Regex;

// The file itself, so the test checks the code libcontainer compiles.
#[path = "../../vendor/libcontainer/src/process/intel_rdt_schemata.rs"]
mod intel_rdt_schemata;

use intel_rdt_schemata::{generic_body, l3_body, schemata_tokens, without_leading_zeros};

/// Every string of `1..=max_len` characters from `alphabet`, and the empty string.
fn strings(alphabet: &[char], max_len: usize) -> Vec<String> {
    let mut all = vec![String::new()];
    let mut last = vec![String::new()];
    for _ in 0..max_len {
        let next: Vec<String> = last
            .iter()
            .flat_map(|s| {
                alphabet.iter().map(move |c| {
                    let mut longer = s.clone();
                    longer.push(*c);
                    longer
                })
            })
            .collect();
        all.extend(next.iter().cloned());
        last = next;
    }
    all
}

/// What libcontainer 0.7.0's parse_{mb,l3,generic}_line returned: the tokens, or None
/// for an error.
struct RegexParser {
    validate: Regex,
    capture: Regex,
    strip_zeros: bool,
}

impl RegexParser {
    fn new(validate: &str, capture: &str, strip_zeros: bool) -> Self {
        RegexParser {
            validate: Regex::new(validate).expect("valid regex"),
            capture: Regex::new(capture).expect("valid regex"),
            strip_zeros,
        }
    }

    fn parse(&self, line: &str) -> Option<HashMap<String, String>> {
        if !self.validate.is_match(line) {
            return None;
        }
        let mut tokens = HashMap::new();
        for token in self.capture.captures_iter(line) {
            let (key, value) = (token.get(1)?.as_str(), token.get(2)?.as_str());
            let value = match value.trim_start_matches('0') {
                "" if self.strip_zeros => "0",
                trimmed if self.strip_zeros => trimmed,
                _ => value,
            };
            tokens.insert(key.to_string(), value.to_string());
        }
        Some(tokens)
    }
}

/// The same three parsers as vendor/libcontainer/src/process/intel_rdt.rs builds them.
fn hand_parse(kind: &str, line: &str) -> Option<HashMap<String, String>> {
    let tokens = match kind {
        "mb" => line
            .strip_prefix("MB:")
            .and_then(|body| schemata_tokens(body, false))?,
        "l3" => l3_body(line).and_then(|body| schemata_tokens(body, true))?,
        _ => generic_body(line).and_then(|body| schemata_tokens(body, true))?,
    };
    Some(
        tokens
            .into_iter()
            .map(|(key, value)| {
                let value = if kind == "mb" {
                    value
                } else {
                    without_leading_zeros(value)
                };
                (key.to_string(), value.to_string())
            })
            .collect(),
    )
}

#[test]
fn intel_rdt_schemata_lines_parse_as_with_the_regexes() {
    // The expressions of libcontainer 0.7.0's intel_rdt.rs, verbatim.
    let parsers = [
        (
            "mb",
            RegexParser::new(
                r"^MB:(?:\s|;)*(?:\w+\s*=\s*\w+)?(?:(?:\s*;+\s*)+\w+\s*=\s*\w+)*(?:\s|;)*$",
                r"(\w+)\s*=\s*(\w+)",
                false,
            ),
        ),
        (
            "l3",
            RegexParser::new(
                r"^(?:L3|L3DATA|L3CODE):(?:\s|;)*(?:\w+\s*=\s*[[:xdigit:]]+)?(?:(?:\s*;+\s*)+\w+\s*=\s*[[:xdigit:]]+)*(?:\s|;)*$",
                // 0* in the capture, rather than code, drops the leading zeros.
                r"(\w+)\s*=\s*0*([[:xdigit:]]+)",
                false,
            ),
        ),
        (
            "generic",
            RegexParser::new(
                r"^[A-Za-z0-9]+:(?:\s|;)*(?:\w+\s*=\s*[[:xdigit:]]+)?(?:(?:\s*;+\s*)+\w+\s*=\s*[[:xdigit:]]+)*(?:\s|;)*$",
                r"(\w+)\s*=\s*([[:xdigit:]]+)",
                true,
            ),
        ),
    ];
    let prefixes = [
        "MB:", "L3:", "L3CODE:", "L2:", "SMBA:", "L_2:", "mb:", "", ":",
    ];
    // Word and hex characters, separators, Unicode letters and white space.
    let mut bodies = strings(&['a', '0', 'f', 'g', '=', ';', ' ', '_', 'é', '\u{a0}'], 4);
    bodies.extend(strings(&['1', '0', '=', ';', ' ', '\t'], 5));
    bodies.extend(
        [
            "0=7000;1=50",
            " 0 = 00ff ; ; 1=f0 ;",
            "0=ffff;1=ffff;",
            ";;0=ff",
            "0=ff 1=ff",
            "0=ff;1",
            "0==ff",
            "0=0000",
            "0=ff;0=00f",
            "cache_0=0f0",
            "0=f:",
            ":0=f",
            "0=1:1=2",
        ]
        .map(String::from),
    );
    let mut accepted = 0;
    for prefix in prefixes {
        for body in &bodies {
            let line = format!("{prefix}{body}");
            for (kind, parser) in &parsers {
                let expected = parser.parse(&line);
                accepted += usize::from(expected.is_some());
                assert_eq!(hand_parse(kind, &line), expected, "{kind} line {line:?}");
            }
        }
    }
    // The alphabet reaches both answers.
    assert!(accepted > 1000, "{accepted}");
}

#[test]
fn exec_cpu_affinity_lists_are_checked_as_with_the_regex() {
    // oci-spec 0.10.0's expression for execCPUAffinity's `initial` and `final`, verbatim.
    let regex = Regex::new(r"^(\d+(-\d+)?)(,\d+(-\d+)?)*$").expect("valid regex");
    let mut lists = strings(&['0', '7', '-', ',', ' ', 'a'], 5);
    lists.extend(strings(&['1', '-', ','], 7));
    lists.extend(["0-3,7", "12-15,0,1-1", "0-3-5", "0,", ",0", "1--2", "0-"].map(String::from));
    let mut accepted = 0;
    for list in &lists {
        let expected = regex.is_match(list);
        accepted += usize::from(expected);
        let json = serde_json::json!({ "initial": list, "final": "0" });
        let parsed = serde_json::from_value::<ExecCPUAffinity>(json);
        assert_eq!(parsed.is_ok(), expected, "initial {list:?}");
        let json = serde_json::json!({ "final": list });
        let parsed = serde_json::from_value::<ExecCPUAffinity>(json);
        assert_eq!(parsed.is_ok(), expected, "final {list:?}");
        let built = ExecCPUAffinityBuilder::default()
            .initial(list.as_str())
            .build();
        assert_eq!(built.is_ok(), expected, "builder {list:?}");
    }
    assert!(accepted > 100, "{accepted}");
    // Beyond ASCII, the regex's `\d` took other scripts' digits; the check by hand does
    // not. libcontainer's CPU list parser refused them either way.
    assert!(regex.is_match("\u{663}"));
    let json = serde_json::json!({ "initial": "\u{663}" });
    assert!(serde_json::from_value::<ExecCPUAffinity>(json).is_err());
}
