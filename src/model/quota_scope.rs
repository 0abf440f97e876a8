//! A ResourceQuota's `scopeSelector`, for the one scope berth has a use for:
//! `PriorityClass`. A quota with such a selector counts only the pods whose
//! `priorityClassName` it selects (after admission gave them the global default's), so
//! that, say, the pods of class `high` in a namespace may take at most 2Gi together.
//!
//! What a namespace uses is counted once for every quota ([`super::resource_quota::Usage`]);
//! for the scoped ones a pod's amounts are also counted under [`class_key`], its class
//! beside each resource, and a scoped quota adds up the classes it selects
//! ([`scoped_usage`]).

use serde::{Deserialize, Serialize};

use super::resource_quota::Usage;

/// The scope names berth supports.
pub const SCOPE_NAMES: [&str; 1] = ["PriorityClass"];
/// Operators of a scope requirement.
pub const SCOPE_OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ScopeSelector {
    /// ANDed.
    pub match_expressions: Vec<ScopeRequirement>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ScopeRequirement {
    pub scope_name: String,
    pub operator: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl ScopeSelector {
    /// Whether a pod of priority class `class` (`""` for none) is in the scope.
    /// `Exists` asks for a class, `DoesNotExist` for none.
    pub fn selects(&self, class: &str) -> bool {
        self.match_expressions.iter().all(|r| {
            let listed = r.values.iter().any(|v| v == class);
            match r.operator.as_str() {
                "In" => listed,
                "NotIn" => !listed,
                "Exists" => !class.is_empty(),
                "DoesNotExist" => class.is_empty(),
                // Validation admits no other operator.
                _ => false,
            }
        })
    }
}

/// The separator of a [`class_key`]: in neither a resource name nor a class name (a
/// DNS subdomain).
const SEPARATOR: char = '|';

/// The key a pod's amount of `resource` is also counted under, with its `class`.
pub fn class_key(resource: &str, class: &str) -> String {
    format!("{resource}{SEPARATOR}{class}")
}

/// What the pods `selector` selects use, by plain resource name, out of a namespace's
/// `usage` (which counts them by class too).
pub fn scoped_usage(selector: &ScopeSelector, usage: &Usage) -> Usage {
    let mut scoped = Usage::default();
    for (key, amount) in &usage.0 {
        let Some((resource, class)) = key.split_once(SEPARATOR) else {
            continue;
        };
        if selector.selects(class) {
            let total = scoped.0.entry(resource.to_owned()).or_insert(0);
            *total = total.saturating_add(*amount);
        }
    }
    scoped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(operator: &str, values: &[&str]) -> ScopeSelector {
        ScopeSelector {
            match_expressions: vec![ScopeRequirement {
                scope_name: "PriorityClass".into(),
                operator: operator.into(),
                values: values.iter().map(|v| v.to_string()).collect(),
            }],
        }
    }

    #[test]
    fn operators_select_by_class() {
        let high = selector("In", &["high", "critical"]);
        assert!(high.selects("high") && !high.selects("low") && !high.selects(""));
        let not_high = selector("NotIn", &["high"]);
        assert!(not_high.selects("low") && not_high.selects("") && !not_high.selects("high"));
        let any = selector("Exists", &[]);
        assert!(any.selects("low") && !any.selects(""));
        let none = selector("DoesNotExist", &[]);
        assert!(none.selects("") && !none.selects("low"));
    }

    #[test]
    fn scoped_usage_adds_up_the_selected_classes() {
        let mut usage = Usage::default();
        for (key, amount) in [
            ("pods", 3),
            (class_key("pods", "high").as_str(), 1),
            (class_key("pods", "low").as_str(), 1),
            (class_key("pods", "").as_str(), 1),
            (class_key("requests.memory", "high").as_str(), 512),
        ] {
            usage.0.insert(key.to_owned(), amount);
        }
        let high = scoped_usage(&selector("In", &["high"]), &usage);
        assert_eq!(high.get("pods"), 1);
        assert_eq!(high.get("requests.memory"), 512);
        assert_eq!(
            scoped_usage(&selector("NotIn", &["high"]), &usage).get("pods"),
            2
        );
    }
}
