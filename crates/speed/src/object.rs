//! One JSON object read straight into per-column slots.
//!
//! Keys are matched against the declared column names while the message is
//! parsed; fields no column declares are skipped without building anything, and
//! no map of the whole object is allocated (a `serde_json::Value` object costs a
//! `String` per key plus the map itself: most of decoding's time at high rates).
//! Semantics match `serde_json::from_slice::<Value>`: a repeated key keeps its
//! last value, and trailing characters are an error.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

/// Why a payload is not a JSON object.
pub(crate) enum ObjectError {
    /// Valid JSON, but not an object.
    NotObject,
    /// Not valid JSON (serde_json's message).
    Syntax(String),
}

/// Parses `payload` as one object, putting the value of each key that equals
/// `names[i]` into `slots[i]` (other slots become `None`).
pub(crate) fn read_object(
    payload: &[u8],
    names: &[String],
    slots: &mut [Option<Value>],
) -> Result<(), ObjectError> {
    slots.iter_mut().for_each(|s| *s = None);
    let mut de = serde_json::Deserializer::from_slice(payload);
    ObjectSeed { names, slots }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| {
            if e.is_data() {
                ObjectError::NotObject
            } else {
                ObjectError::Syntax(e.to_string())
            }
        })
}

struct ObjectSeed<'a> {
    names: &'a [String],
    slots: &'a mut [Option<Value>],
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(column) = map.next_key_seed(KeySeed { names: self.names })? {
            match column {
                Some(i) => self.slots[i] = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A key, resolved to its column index (escaped keys arrive unescaped).
struct KeySeed<'a> {
    names: &'a [String],
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.names.iter().position(|n| n == v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<Vec<Option<Value>>, String> {
        let names = vec!["a".to_string(), "b\"q".to_string()];
        let mut slots = vec![Some(Value::Bool(true)); 2];
        match read_object(json.as_bytes(), &names, &mut slots) {
            Ok(()) => Ok(slots),
            Err(ObjectError::NotObject) => Err("not an object".into()),
            Err(ObjectError::Syntax(e)) => Err(e),
        }
    }

    #[test]
    fn matches_keys_and_skips_the_rest() {
        let got = read(r#"{"x":{"deep":[1,2]},"a":1,"b\"q":"s","a":2}"#).unwrap();
        assert_eq!(got, vec![Some(Value::from(2)), Some(Value::from("s"))]);
        assert_eq!(read("{}").unwrap(), vec![None, None], "slots are reset");
        assert_eq!(read("[1]").unwrap_err(), "not an object");
        assert_eq!(read("7").unwrap_err(), "not an object");
        assert!(read(r#"{"a":1} x"#).unwrap_err().contains("trailing"));
        assert!(read(r#"{"a":"#).unwrap_err().contains("EOF"));
    }
}
