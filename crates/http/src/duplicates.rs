//! Finds a key given twice in one JSON object, at any depth. serde refuses duplicate
//! fields of a struct, but a map (`metadata`, template `data`) keeps the last one
//! silently; a client that sends both meant something, so it gets a 422 instead.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

/// The path of the first duplicate key (`metadata.order`), if there is one. Bodies
/// that are not JSON pass: the typed decoding reports those.
pub fn first_duplicate(body: &[u8]) -> Option<String> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let found = Walk.deserialize(&mut deserializer).ok().flatten()?;
    Some(found.path())
}

/// Walks a JSON value. It runs on every request body, so it allocates nothing for a
/// body without duplicates: keys are borrowed where they have no escapes, and the path
/// is built only once a duplicate is found.
struct Walk;

/// A duplicate's path, innermost segment first (each level adds its own on the way out).
struct Found(Vec<Segment>);

enum Segment {
    Key(String),
    Index(usize),
}

impl Found {
    fn path(self) -> String {
        let mut path = String::new();
        for segment in self.0.into_iter().rev() {
            match segment {
                Segment::Key(key) if path.is_empty() => path.push_str(&key),
                Segment::Key(key) => {
                    path.push('.');
                    path.push_str(&key);
                }
                Segment::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        path
    }
}

/// An object key, borrowed from the body unless it had escapes.
#[derive(PartialEq, Eq, Hash)]
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The keys of one object so far: a short list searched in order, as most objects
/// are small, and a set once it grows.
enum Seen<'de> {
    Few(Vec<Key<'de>>),
    Many(HashSet<Key<'de>>),
}

impl<'de> Seen<'de> {
    const FEW: usize = 16;

    /// False if `key` was there already.
    fn insert(&mut self, key: Key<'de>) -> bool {
        match self {
            Seen::Few(keys) if keys.contains(&key) => false,
            Seen::Few(keys) if keys.len() < Self::FEW => {
                keys.push(key);
                true
            }
            Seen::Few(keys) => {
                let mut set: HashSet<Key<'de>> = keys.drain(..).collect();
                set.insert(key);
                *self = Seen::Many(set);
                true
            }
            Seen::Many(set) => set.insert(key),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = Option<Found>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = Option<Found>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = Seen::Few(Vec::new());
        let mut found = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if found.is_some() {
                map.next_value::<de::IgnoredAny>()?;
                continue;
            }
            let name = key.0.clone();
            if !seen.insert(key) {
                found = Some(Found(vec![Segment::Key(name.into_owned())]));
                map.next_value::<de::IgnoredAny>()?;
            } else if let Some(mut inner) = map.next_value_seed(Walk)? {
                inner.0.push(Segment::Key(name.into_owned()));
                found = Some(inner);
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut index = 0;
        while let Some(inner) = seq.next_element_seed(Walk)? {
            if let Some(mut inner) = inner {
                inner.0.push(Segment::Index(index));
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                return Ok(Some(inner));
            }
            index += 1;
        }
        Ok(None)
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
        assert_eq!(first_duplicate(br#"{"a\u0062": 1, "ab": 2}"#), Some("ab".into()), "escaped");
        assert_eq!(
            first_duplicate(br#"{"x": [[0], [1, {"k": {"a": 1, "a": 2}}]]}"#),
            Some("x[1][1].k.a".into())
        );
        assert_eq!(
            first_duplicate(br#"{"a": {"b": 1, "b": 2}, "a": 3}"#),
            Some("a.b".into()),
            "the first in the body"
        );
        // Past the short list's length, the set takes over.
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\": {i}")).collect();
        let body = format!("{{{}, \"k33\": 0}}", many.join(", "));
        assert_eq!(first_duplicate(body.as_bytes()), Some("k33".into()));
        let body = format!("{{{}}}", many.join(", "));
        assert_eq!(first_duplicate(body.as_bytes()), None);
    }
}
