//! Finds a key given twice in one JSON object, at any depth. serde refuses duplicate
//! fields of a struct, but a map (`metadata`, template `data`) keeps the last one
//! silently; a client that sends both meant something, so it gets a 422 instead.

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;

/// The path of the first duplicate key (`metadata.order`), if there is one. Bodies
/// that are not JSON pass: the typed decoding reports those.
pub fn first_duplicate(body: &[u8]) -> Option<String> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    (Walk { path: String::new() }).deserialize(&mut deserializer).ok().flatten()
}

struct Walk {
    path: String,
}

impl Walk {
    fn child(&self, key: &str) -> Walk {
        let path =
            if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) };
        Walk { path }
    }
}

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = HashSet::new();
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child(&key);
            if found.is_none() && !seen.insert(key) {
                found = Some(child.path.clone());
            }
            let inner = map.next_value_seed(child)?;
            found = found.or(inner);
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut index = 0;
        while let Some(inner) =
            seq.next_element_seed(Walk { path: format!("{}[{index}]", self.path) })?
        {
            found = found.or(inner);
            index += 1;
        }
        Ok(found)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_found_at_any_depth() {
        assert_eq!(first_duplicate(br#"{"a": 1, "a": 2}"#), Some("a".into()));
        assert_eq!(
            first_duplicate(br#"{"metadata": {"order": 1, "order": 2}}"#),
            Some("metadata.order".into())
        );
        assert_eq!(
            first_duplicate(br#"{"to": [{"x": 1}, {"y": 1, "y": 2}]}"#),
            Some("to[1].y".into())
        );
        assert_eq!(first_duplicate(br#"{"a": {"b": 1}, "c": {"b": 2}}"#), None);
        assert_eq!(first_duplicate(b"not json"), None);
    }
}
