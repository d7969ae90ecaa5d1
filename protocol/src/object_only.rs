//! Structs as JSON objects only. serde's derive also reads a struct from an array of
//! its fields in order (`[true, [], []]` as an ACL), which no schema of the protocol
//! admits. For nested request fields:
//! `#[serde(deserialize_with = "object_only::object")]`.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error};
use serde_json::{Map, Value};

/// A `T` written as a JSON object.
pub fn object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let map = Map::<String, Value>::deserialize(deserializer)?;
    T::deserialize(Value::Object(map)).map_err(D::Error::custom)
}

/// An optional list of `T`s, each written as a JSON object (`null` or absent is
/// `None`; pair with `#[serde(default)]`).
pub fn option_vec<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let Some(items) = Option::<Vec<Map<String, Value>>>::deserialize(deserializer)? else {
        return Ok(None);
    };
    items
        .into_iter()
        .map(|item| T::deserialize(Value::Object(item)).map_err(D::Error::custom))
        .collect::<Result<Vec<T>, D::Error>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        a: bool,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Outer {
        #[serde(deserialize_with = "super::object")]
        one: Inner,
        #[serde(default, deserialize_with = "super::option_vec")]
        many: Option<Vec<Inner>>,
    }

    #[test]
    fn objects_are_read_and_arrays_in_their_place_are_refused() {
        let read: Outer =
            serde_json::from_str(r#"{"one":{"a":true},"many":[{"a":false}]}"#).unwrap();
        assert_eq!(read.one, Inner { a: true });
        assert_eq!(read.many, Some(vec![Inner { a: false }]));
        let absent: Outer = serde_json::from_str(r#"{"one":{"a":true}}"#).unwrap();
        assert_eq!(absent.many, None);
        let null: Outer = serde_json::from_str(r#"{"one":{"a":true},"many":null}"#).unwrap();
        assert_eq!(null.many, None);
        assert!(serde_json::from_str::<Outer>(r#"{"one":[true]}"#).is_err());
        assert!(serde_json::from_str::<Outer>(r#"{"one":{"a":true},"many":[[false]]}"#).is_err());
        let unknown = serde_json::from_str::<Outer>(r#"{"one":{"a":1}}"#).unwrap_err();
        assert!(unknown.to_string().contains("invalid type"), "{unknown}");
    }
}
