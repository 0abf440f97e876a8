//! Small building blocks for walking an untyped JSON document: type checks that record
//! an error and carry on, so one pass reports every problem in a manifest or a board
//! profile (`model::board`), each with its field path.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::model::{validate_label_key, validate_label_value, validate_qualified_name, FieldError};

pub(in crate::model) type JsonObject = Map<String, Value>;

/// `spec` + `replicas` → `spec.replicas`; the root path is empty.
pub(in crate::model) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `spec.containers` + 0 → `spec.containers[0]`.
pub(in crate::model) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A field's value; an explicit `null` counts as absent, as it does for kubectl.
pub(in crate::model) fn get<'a>(object: &'a JsonObject, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

/// Formats the list of allowed values the way Kubernetes does: `"A", "B"`.
fn quoted_list(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Default)]
pub(in crate::model) struct Checker {
    pub(in crate::model) errors: Vec<FieldError>,
}

impl Checker {
    pub(in crate::model) fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.to_string(),
            message: message.into(),
        });
    }

    pub(in crate::model) fn required(&mut self, path: &str) {
        self.error(path, "required value");
    }

    /// A field of `object` that must be there, reported at `path.key` when it is not.
    pub(in crate::model) fn required_field<'a>(
        &mut self,
        object: &'a JsonObject,
        path: &str,
        key: &str,
    ) -> Option<&'a Value> {
        let found = get(object, key);
        if found.is_none() {
            self.required(&join(path, key));
        }
        found
    }

    /// Reports every key of a manifest's `object` that is not in `allowed`.
    pub(in crate::model) fn only_fields(
        &mut self,
        object: &JsonObject,
        path: &str,
        allowed: &[&str],
    ) {
        self.unknown_fields(object, path, allowed, "field not supported by berth");
    }

    /// Reports every key of `object` that is not in `allowed`, with `message`.
    pub(in crate::model) fn unknown_fields(
        &mut self,
        object: &JsonObject,
        path: &str,
        allowed: &[&str],
        message: &str,
    ) {
        for key in object.keys() {
            if !allowed.contains(&key.as_str()) {
                self.error(&join(path, key), message);
            }
        }
    }

    pub(in crate::model) fn object<'a>(
        &mut self,
        value: &'a Value,
        path: &str,
    ) -> Option<&'a JsonObject> {
        let found = value.as_object();
        if found.is_none() {
            self.error(path, "expected object");
        }
        found
    }

    pub(in crate::model) fn list<'a>(
        &mut self,
        value: &'a Value,
        path: &str,
    ) -> Option<&'a [Value]> {
        let found = value.as_array().map(Vec::as_slice);
        if found.is_none() {
            self.error(path, "expected list");
        }
        found
    }

    /// Checks each item of the list at `object.key` (when present) with `check`, given
    /// the item and its path (`path.key[i]`).
    pub(in crate::model) fn each_in(
        &mut self,
        object: &JsonObject,
        key: &str,
        path: &str,
        mut check: impl FnMut(&mut Checker, &Value, &str),
    ) {
        let Some(value) = get(object, key) else {
            return;
        };
        let list_path = join(path, key);
        let Some(items) = self.list(value, &list_path) else {
            return;
        };
        for (i, item) in items.iter().enumerate() {
            check(self, item, &index(&list_path, i));
        }
    }

    pub(in crate::model) fn string<'a>(&mut self, value: &'a Value, path: &str) -> Option<&'a str> {
        let found = value.as_str();
        if found.is_none() {
            self.error(path, "expected string");
        }
        found
    }

    pub(in crate::model) fn boolean(&mut self, value: &Value, path: &str) -> Option<bool> {
        let found = value.as_bool();
        if found.is_none() {
            self.error(path, "expected boolean");
        }
        found
    }

    /// Only JSON integers count: `1.5` and `"3"` are type errors.
    pub(in crate::model) fn integer(&mut self, value: &Value, path: &str) -> Option<i64> {
        match value {
            Value::Number(n) if n.is_i64() => n.as_i64(),
            Value::Number(n) if n.is_u64() => {
                self.error(path, format!("must be less than or equal to {}", i64::MAX));
                None
            }
            _ => {
                self.error(path, "expected integer");
                None
            }
        }
    }

    /// An integer in `min..=max`; the message depends on which bound matters.
    pub(in crate::model) fn integer_in(
        &mut self,
        value: &Value,
        path: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let n = self.integer(value, path)?;
        if (min..=max).contains(&n) {
            return Some(n);
        }
        // Bounds that only reflect the integer type read better as one-sided limits.
        let message = if max >= i64::from(i32::MAX) {
            if n < min {
                format!("must be greater than or equal to {min}")
            } else {
                format!("must be less than or equal to {max}")
            }
        } else {
            format!("must be between {min} and {max}, inclusive")
        };
        self.error(path, message);
        None
    }

    /// A string that must be one of `supported`.
    pub(in crate::model) fn one_of<'a>(
        &mut self,
        value: &'a Value,
        path: &str,
        supported: &[&str],
    ) -> Option<&'a str> {
        let s = self.string(value, path)?;
        if supported.contains(&s) {
            Some(s)
        } else {
            self.error(
                path,
                format!(
                    "unsupported value {s:?}: supported values: {}",
                    quoted_list(supported)
                ),
            );
            None
        }
    }

    /// A map of string to string; entries with other values are reported by key.
    pub(in crate::model) fn string_map<'a>(
        &mut self,
        value: &'a Value,
        path: &str,
    ) -> BTreeMap<&'a str, &'a str> {
        let mut entries = BTreeMap::new();
        if let Some(object) = self.object(value, path) {
            for (key, item) in object {
                if let Some(text) = self.string(item, &join(path, key)) {
                    entries.insert(key.as_str(), text);
                }
            }
        }
        entries
    }

    /// A label map with Kubernetes key and value rules; returns the well-formed pairs.
    pub(in crate::model) fn labels<'a>(
        &mut self,
        value: &'a Value,
        path: &str,
    ) -> BTreeMap<&'a str, &'a str> {
        let entries = self.string_map(value, path);
        for (key, text) in &entries {
            if let Err(message) = validate_label_key(key) {
                self.error(path, message);
            }
            if let Err(message) = validate_label_value(text) {
                self.error(&join(path, key), message);
            }
        }
        entries
    }

    /// An annotation map: keys are qualified names, values any string.
    pub(in crate::model) fn annotations(&mut self, value: &Value, path: &str) {
        let entries = self.string_map(value, path);
        for key in entries.keys() {
            if let Err(message) = validate_qualified_name(key) {
                self.error(path, message);
            }
        }
    }
}
