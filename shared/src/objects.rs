//! serde reads a struct from a JSON array as readily as from an object (`"chat": [null,
//! null]` becomes an empty `ChatIds`). A request that sends an array where the API
//! documents an object is wrong, so the fields that hold structs insist on an object:
//! `#[serde(deserialize_with = "crate::objects::object")]` and its variants for
//! optional fields, lists and maps. And a whole number may be spelt `48.0`.

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// A `T` that was written as a JSON object.
struct Strict<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Strict<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = Strict<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Strict)
            }
        }
        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Strict::deserialize(d).map(|Strict(value)| value)
}

pub fn optional_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(Option::<Strict<T>>::deserialize(d)?.map(|Strict(value)| value))
}

pub fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Vec::<Strict<T>>::deserialize(d)?.into_iter().map(|Strict(value)| value).collect())
}

pub fn object_values<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<BTreeMap<String, T>, D::Error> {
    Ok(BTreeMap::<String, Strict<T>>::deserialize(d)?
        .into_iter()
        .map(|(key, Strict(value))| (key, value))
        .collect())
}

/// A whole number that JSON may spell `48` or `48.0` (both are integers to JSON Schema,
/// so generated clients send either).
pub fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    use serde::Deserialize;
    let number = serde_json::Number::deserialize(deserializer)?;
    let whole = number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX))
            .map(|f| f as u64)
    });
    whole.and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "expected a whole number from 0 to {}, got {number}",
            u32::MAX
        ))
    })
}

/// [`whole_number`] for an optional field.
pub fn optional_whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_number")] u32);
    use serde::Deserialize;
    Ok(Option::<Whole>::deserialize(deserializer)?.map(|Whole(n)| n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Inner {
        #[serde(default)]
        a: Option<u8>,
    }

    #[derive(Debug, serde::Deserialize)]
    struct Outer {
        #[serde(default, deserialize_with = "optional_object")]
        one: Option<Inner>,
        #[serde(default, deserialize_with = "objects")]
        many: Vec<Inner>,
    }

    #[test]
    fn arrays_are_not_objects() {
        let ok: Outer = serde_json::from_str(r#"{"one": {"a": 1}, "many": [{}]}"#).unwrap();
        assert_eq!((ok.one, ok.many), (Some(Inner { a: Some(1) }), vec![Inner { a: None }]));
        assert!(serde_json::from_str::<Outer>(r#"{"one": [1]}"#).is_err());
        assert!(serde_json::from_str::<Outer>(r#"{"many": [[null]]}"#).is_err());
    }
}
