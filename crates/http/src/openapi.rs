//! The OpenAPI document as served: what utoipa generates from the handlers, finished
//! with what the annotations cannot say well, so that a client generated from it (or
//! schemathesis, in the test command) agrees with the server:
//!
//! - every error answer is `application/problem+json`, and every operation documents a
//!   `default` problem for the statuses any route may give (401, 403, 408, 413, 415,
//!   429, 431, 500, …);
//! - a schema that flattens another (`User` = id + profile + times) becomes one object,
//!   since `allOf` with `additionalProperties: false` parts rejects every instance;
//! - rules the types do not carry: lengths, patterns, ranges, required variants.

use super::ApiDoc;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;
use utoipa::OpenApi;

/// The finished document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
        problems(&mut doc);
        flatten_all_of(&mut doc);
        rules(&mut doc);
        doc
    })
}

const PROBLEM: &str = "application/problem+json";

fn problem_response(description: &str) -> Value {
    json!({"description": description,
           "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}})
}

fn operations(doc: &mut Value) -> impl Iterator<Item = (&String, &mut Map<String, Value>)> {
    doc["paths"].as_object_mut().into_iter().flat_map(|paths| {
        paths.iter_mut().flat_map(|(path, item)| {
            item.as_object_mut().into_iter().flat_map(move |item| {
                item.iter_mut()
                    .filter(|(method, _)| {
                        matches!(method.as_str(), "get" | "put" | "post" | "delete" | "patch")
                    })
                    .filter_map(move |(_, op)| op.as_object_mut().map(|op| (path, op)))
            })
        })
    })
}

fn problems(doc: &mut Value) {
    for (_, operation) in operations(doc) {
        let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else {
            continue;
        };
        for (status, response) in responses.iter_mut() {
            if !(status.starts_with('4') || status.starts_with('5')) {
                continue;
            }
            if let Some(content) = response.get_mut("content").and_then(Value::as_object_mut)
                && let Some(body) = content.remove("application/json")
            {
                content.insert(PROBLEM.to_owned(), body);
            }
        }
        responses
            .entry("default")
            .or_insert_with(|| problem_response("Any other error, as RFC 9457 problem+json"));
    }
}

/// Replaces each component schema that is an `allOf` of objects by one object with
/// all their properties (and the strictest `additionalProperties`).
fn flatten_all_of(doc: &mut Value) {
    let Some(schemas) = doc["components"]["schemas"].as_object().cloned() else { return };
    let resolve = |part: &Value| -> Value {
        match part.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference.rsplit('/').next().unwrap_or_default();
                schemas.get(name).cloned().unwrap_or(Value::Null)
            }
            None => part.clone(),
        }
    };
    for (name, schema) in &schemas {
        let Some(parts) = schema.get("allOf").and_then(Value::as_array) else { continue };
        let mut merged = Map::new();
        let mut required = Vec::new();
        let mut closed = false;
        for part in parts.iter().map(resolve) {
            if let Some(properties) = part.get("properties").and_then(Value::as_object) {
                merged.extend(properties.clone());
            }
            if let Some(names) = part.get("required").and_then(Value::as_array) {
                required.extend(names.iter().cloned());
            }
            closed |= part.get("additionalProperties") == Some(&Value::Bool(false));
        }
        let mut object = json!({"type": "object", "properties": merged, "required": required});
        if let Some(description) = schema.get("description") {
            object["description"] = description.clone();
        }
        if closed {
            object["additionalProperties"] = Value::Bool(false);
        }
        doc["components"]["schemas"][name] = object;
    }
}

/// Sets `value` at the JSON pointer `at` (made if missing) and merges objects.
fn patch(doc: &mut Value, at: &str, value: Value) {
    let mut here = doc;
    for key in at.split('/').filter(|k| !k.is_empty()) {
        let key = key.replace("~1", "/").replace("~0", "~");
        here = match here {
            Value::Array(items) => &mut items[key.parse::<usize>().expect("an index")],
            other => {
                if !other.is_object() {
                    *other = json!({});
                }
                other.as_object_mut().expect("an object").entry(key).or_insert(Value::Null)
            }
        };
    }
    match (here, value) {
        (Value::Object(existing), Value::Object(extra)) => existing.extend(extra),
        (slot, value) => *slot = value,
    }
}

/// A query or path parameter's schema, found by operation and name.
fn parameter(doc: &mut Value, path: &str, method: &str, name: &str, schema: Value) {
    let Some(parameters) = doc["paths"][path][method]["parameters"].as_array_mut() else {
        panic!("{method} {path} has no parameters");
    };
    let found = parameters.iter_mut().find(|p| p["name"] == name);
    let found = found.unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"));
    match found["schema"].as_object_mut() {
        Some(existing) => existing.extend(schema.as_object().cloned().unwrap_or_default()),
        None => found["schema"] = schema,
    }
}

/// An id a caller chooses (users, groups): what `check_caller_id` accepts.
const CALLER_ID: &str = "^[^\\s/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u034f\\u061c\\u115f\\u1160\\u17b4\\u17b5\\u180b-\\u180f\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u206f\\u3164\\ufe00-\\ufe0f\\ufeff\\uffa0\\ufff0-\\ufffb]+$";

fn caller_id() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 128, "pattern": CALLER_ID})
}

fn rules(doc: &mut Value) {
    let at =
        |name: &str, property: &str| format!("/components/schemas/{name}/properties/{property}");
    let one_line_name = json!({"minLength": 1, "maxLength": 100, "pattern": "\\S"});
    patch(
        doc,
        &at("CreateKey", "app_id"),
        json!({"minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$"}),
    );
    patch(doc, &at("CreateKey", "name"), one_line_name.clone());
    patch(doc, &at("CreateKey", "scopes"), json!({"minItems": 1}));
    patch(doc, &at("PutGroup", "name"), one_line_name.clone());
    patch(doc, &at("CreateTemplate", "name"), one_line_name);
    patch(
        doc,
        &at("CreateTemplate", "id"),
        json!({"minLength": 1, "maxLength": 64, "pattern": "^[a-z0-9_-]+$"}),
    );
    for schema in ["CreateTemplate", "NewVersion"] {
        patch(doc, &at(schema, "locales"), json!({"required": ["default"]}));
    }
    for field in ["add", "remove"] {
        patch(doc, &at("Membership", field), json!({"maxItems": 10000, "items": caller_id()}));
    }
    patch(doc, &at("Bulk", "users"), json!({"minItems": 1, "maxItems": 10000}));
    for (path, max) in
        [("/v1/notifications", 200), ("/v1/users", 1000), ("/v1/groups/{id}/members", 10000)]
    {
        parameter(doc, path, "get", "limit", json!({"minimum": 1, "maximum": max}));
    }
    parameter(
        doc,
        "/v1/notifications",
        "get",
        "category",
        json!({"minLength": 1, "maxLength": 64}),
    );
    for (path, methods) in [
        ("/v1/users/{id}", &["get", "put", "delete"][..]),
        ("/v1/users/{id}/groups", &["get"][..]),
        ("/v1/users/{id}/preferences", &["get", "put"][..]),
        ("/v1/groups/{id}", &["get", "put", "delete"][..]),
        ("/v1/groups/{id}/members", &["get", "post"][..]),
    ] {
        for method in methods {
            parameter(doc, path, method, "id", caller_id());
        }
    }
    for method in ["get", "put", "delete"] {
        parameter(
            doc,
            "/v1/categories/{name}",
            method,
            "name",
            json!({"minLength": 1, "maxLength": 64, "pattern": "^[a-z0-9_.-]+$"}),
        );
    }
    for (path, methods) in [
        ("/v1/templates/{id}", &["get", "delete"][..]),
        ("/v1/templates/{id}/versions", &["post"][..]),
        ("/v1/templates/{id}/rollback", &["post"][..]),
        ("/v1/templates/{id}/preview", &["post"][..]),
        ("/v1/templates/{id}/versions/{version}", &["get"][..]),
    ] {
        for method in methods {
            parameter(
                doc,
                path,
                method,
                "id",
                json!({"minLength": 1, "maxLength": 64, "pattern": "^[a-z0-9_-]+$"}),
            );
        }
    }
    parameter(
        doc,
        "/v1/templates/{id}/versions/{version}",
        "get",
        "version",
        json!({"minimum": 1}),
    );
    for schema in ["Rollback", "Preview"] {
        patch(doc, &at(schema, "version"), json!({"minimum": 1}));
    }
    // Query values the list parses: times, and the cursor it hands out.
    let time = json!({"format": "date-time", "minLength": 1});
    parameter(doc, "/v1/notifications", "get", "created_after", time.clone());
    parameter(doc, "/v1/notifications", "get", "created_before", time);
    let cursor = json!({"pattern": "^ntf_[0-9A-HJKMNP-TV-Z]{26}$"});
    parameter(doc, "/v1/notifications", "get", "cursor", cursor);
    let locale =
        json!({"pattern": "^(default|[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8})*)$", "maxLength": 35});
    for schema in ["CreateTemplate", "NewVersion"] {
        patch(doc, &at(schema, "locales"), json!({"propertyNames": locale.clone()}));
    }
    // A variant needs at least one channel's parts.
    let parts = doc.pointer("/components/schemas/TemplateParts/properties").cloned();
    let names: Vec<String> =
        parts.and_then(|p| p.as_object().map(|p| p.keys().cloned().collect())).unwrap_or_default();
    let one_part: Vec<Value> = names
        .iter()
        .map(|part| json!({"required": [part], "properties": {part.as_str(): {"not": {"type": "null"}}}}))
        .collect();
    patch(doc, "/components/schemas/TemplateParts", json!({"anyOf": one_part}));
    // Profiles: what validate_user checks.
    let tag = json!({"pattern": "^[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8})*$", "maxLength": 35});
    patch(doc, &at("UserProfile", "locale"), tag);
    let zones: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect();
    for (schema, field) in [
        ("UserProfile", "time_zone"),
        ("QuietHours", "time_zone"),
        ("Preview", "time_zone"),
        ("TemplateRequest", "time_zone"),
    ] {
        patch(
            doc,
            &at(schema, field),
            json!({"enum": zones.iter().map(|z| Value::from(*z)).chain([Value::Null]).collect::<Vec<_>>()}),
        );
    }
    let email = json!({"pattern": "^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\\.[A-Za-z0-9-]{1,63})*\\.[A-Za-z]{2,24}$", "maxLength": 254});
    patch(doc, &at("UserProfile", "email"), email.clone());
    patch(doc, &at("Recipient", "email"), email);
    for field in ["p256dh", "auth"] {
        patch(doc, &at("WebPushSubscription", field), json!({"minLength": 1, "maxLength": 512}));
    }
    patch(doc, &at("PushToken", "token"), json!({"minLength": 1, "maxLength": 4096}));
    let category = json!({"pattern": "^[a-z0-9_.-]{1,64}$"});
    patch(doc, &at("Preferences", "categories"), json!({"propertyNames": category.clone()}));
    patch(doc, &at("FrequencyCap", "category"), category.clone());
    patch(doc, &at("SendRequest", "category"), category);
    patch(doc, &at("Preview", "data"), json!({"type": ["object", "null"]}));
    let clock = json!({"pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"});
    patch(doc, &at("QuietHours", "start"), clock.clone());
    patch(doc, &at("QuietHours", "end"), clock);
    let phone = json!({"pattern": "^\\+[1-9][0-9]{6,14}$"});
    patch(doc, &at("UserProfile", "phone"), phone.clone());
    patch(doc, &at("Recipient", "phone"), phone);
    let cap = json!({"minimum": 1, "maximum": herald_core::domain::preferences::MAX_CAP});
    for schema in ["CategoryCap", "FrequencyCap"] {
        patch(doc, &at(schema, "limit"), cap.clone());
    }
    // A public name (literal addresses and localhost are refused), in characters that
    // need no escaping.
    let url = json!({"maxLength": 2048, "pattern":
        "^https?://([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,24}(:[1-9][0-9]{0,4})?(/([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})*)*(\\?([A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"});
    patch(doc, &at("WebPushSubscription", "endpoint"), url.clone());
    patch(doc, &at("WebhookTarget", "url"), url.clone());
    patch(doc, &at("UserProfile", "webhook_url"), url);
    let revision = json!({"type": "string", "pattern": "^(\\*|(W/)?\"[0-9]{1,19}\")$"});
    parameter(doc, "/v1/users/{id}/preferences", "put", "If-Match", revision);
    // The one-click unsubscribe form (RFC 8058).
    let form = "/paths/~1v1~1unsubscribe~1{token}/post/requestBody/content/\
                application~1x-www-form-urlencoded/schema";
    patch(
        doc,
        form,
        json!({"type": "object",
               "properties": {"List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}}}),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_document_carries_problems_and_rules() {
        let doc = document();
        let send = &doc["paths"]["/v1/notifications"]["post"]["responses"];
        assert!(send["422"]["content"][PROBLEM].is_object(), "{send:#}");
        assert!(send["default"]["content"][PROBLEM].is_object());
        let user = &doc["components"]["schemas"]["User"];
        assert!(user.get("allOf").is_none() && user["properties"]["created_at"].is_object());
        assert!(user["properties"]["email"].is_object(), "the profile's fields are merged in");
        let limit = doc["paths"]["/v1/users"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap();
        assert_eq!(limit["schema"]["maximum"], 1000);
    }
}
