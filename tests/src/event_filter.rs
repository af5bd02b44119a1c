//! Lambda's event filtering, played by hand: the `FilterCriteria` patterns of an event
//! source in template.yaml, applied to records as Lambda applies them before a function
//! sees them. Written from AWS's description of the syntax ("Lambda event filtering",
//! "Filter rule syntax"): a record passes if any pattern matches; a pattern matches if
//! every field it names matches; a field matches if its value equals one of the listed
//! values or meets one of the listed operators. Only the operators below are known;
//! any other one fails the test rather than being guessed at.

use serde_json::Value;

/// The filter patterns of the event source `event` of `resource` in template.yaml.
pub fn template_patterns(template: &str, resource: &str, event: &str) -> Vec<Value> {
    let mut lines = template.lines().skip_while(|line| *line != format!("  {resource}:"));
    lines.next().unwrap_or_else(|| panic!("template.yaml has no resource {resource}"));
    let body: Vec<&str> =
        lines.take_while(|line| line.is_empty() || line.starts_with("   ")).collect();
    let start = body
        .iter()
        .position(|line| line.trim() == format!("{event}:"))
        .unwrap_or_else(|| panic!("{resource} has no event source {event}"));
    let indent = body[start].len() - body[start].trim_start().len();
    body[start + 1..]
        .iter()
        .take_while(|line| line.len() - line.trim_start().len() > indent)
        .filter_map(|line| line.trim().strip_prefix("- Pattern: "))
        .map(|quoted| {
            let json = quoted.trim_matches('\'');
            serde_json::from_str(json).unwrap_or_else(|e| panic!("pattern {json}: {e}"))
        })
        .collect()
}

/// Whether `record` reaches the function: no patterns let everything through.
pub fn passes(patterns: &[Value], record: &Value) -> bool {
    patterns.is_empty() || patterns.iter().any(|pattern| matches(pattern, Some(record)))
}

fn matches(pattern: &Value, value: Option<&Value>) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(name, inner)| {
            let field = value.and_then(|v| v.get(name));
            match inner {
                Value::Object(_) => matches(inner, field),
                Value::Array(rules) => rules.iter().any(|rule| meets(rule, field)),
                other => panic!("a pattern's leaf must be an array, not {other}"),
            }
        }),
        other => panic!("a pattern must be an object, not {other}"),
    }
}

/// One rule of a leaf's array against the record's value there (`None`: absent).
fn meets(rule: &Value, value: Option<&Value>) -> bool {
    let Value::Object(operator) = rule else { return value == Some(rule) };
    let (name, operand) = operator.iter().next().expect("an operator names itself");
    let text = value.and_then(Value::as_str);
    match (name.as_str(), operand) {
        ("prefix", Value::String(prefix)) => text.is_some_and(|t| t.starts_with(prefix.as_str())),
        ("suffix", Value::String(suffix)) => text.is_some_and(|t| t.ends_with(suffix.as_str())),
        ("exists", Value::Bool(wanted)) => value.is_some() == *wanted,
        _ => panic!("filter operator {rule} is not known to this harness"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_passes_when_any_pattern_matches_every_field_it_names() {
        let patterns = [
            json!({"dynamodb": {"Keys": {"SK": {"S": ["#", {"prefix": "D#"}]}}}}),
            json!({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"x": [{"exists": false}]}}}),
        ];
        let keyed =
            |sk: &str| json!({"eventName": "MODIFY", "dynamodb": {"Keys": {"SK": {"S": sk}}}});
        assert!(passes(&patterns, &keyed("#")));
        assert!(passes(&patterns, &keyed("D#1")));
        assert!(!passes(&patterns, &keyed("N#1")));
        assert!(!passes(&patterns, &keyed("#D")));
        assert!(passes(&patterns, &json!({"eventName": "INSERT", "dynamodb": {}})));
        let with_x = json!({"eventName": "INSERT", "dynamodb": {"NewImage": {"x": 1}}});
        assert!(!passes(&patterns, &with_x));
        assert!(passes(&[], &keyed("N#1")), "no filter, no filtering");
    }

    #[test]
    fn patterns_are_read_from_the_event_source_they_belong_to() {
        let template = "Resources:\n  Other:\n    Events:\n      Feed:\n        Properties:\n          FilterCriteria:\n            Filters:\n              - Pattern: '{\"a\": [1]}'\n  Track:\n    Type: x\n    Properties:\n      Events:\n        Feed:\n          Properties:\n            FilterCriteria:\n              Filters:\n                - Pattern: '{\"b\": [2]}'\n                - Pattern: '{\"c\": [3]}'\n        Other:\n          Properties:\n            FilterCriteria:\n              Filters:\n                - Pattern: '{\"d\": [4]}'\n";
        assert_eq!(
            template_patterns(template, "Track", "Feed"),
            [json!({"b": [2]}), json!({"c": [3]})]
        );
    }
}
