//! Integers as JSON Schema counts them: `7.0` is the integer 7 (serde would refuse
//! it), while `7.5`, `-1` or a number too large stays an error. For request fields
//! whose schema says `integer`: `#[serde(deserialize_with = "whole_number::u32")]`.

use serde::Deserialize;
use serde::de::{Deserializer, Error, Unexpected};

/// A `u32` written as an integer or as a float with no fraction.
pub fn u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    whole(&number)
}

/// [`u32`] for an optional field (`null` or absent is `None`; pair with
/// `#[serde(default)]`).
pub fn option_u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    Option::<serde_json::Number>::deserialize(deserializer)?
        .map(|number| whole(&number))
        .transpose()
}

fn whole<E: Error>(number: &serde_json::Number) -> Result<u32, E> {
    if let Some(n) = number.as_u64() {
        return u32::try_from(n).map_err(|_| {
            E::invalid_value(Unexpected::Unsigned(n), &"an integer up to 4294967295")
        });
    }
    if let Some(n) = number.as_i64() {
        return Err(E::invalid_value(
            Unexpected::Signed(n),
            &"a non-negative integer",
        ));
    }
    let float = number.as_f64().unwrap_or(f64::NAN);
    if float.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&float) {
        // Whole and in range: the cast is exact.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        return Ok(float as u32);
    }
    Err(E::invalid_value(
        Unexpected::Float(float),
        &"a non-negative integer",
    ))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::u32")]
        n: u32,
        #[serde(default, deserialize_with = "super::option_u32")]
        m: Option<u32>,
    }

    fn parse(json: &str) -> Result<Body, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_floats_are_integers_and_nothing_else_is() {
        assert_eq!(parse(r#"{"n": 7}"#).unwrap().n, 7);
        assert_eq!(parse(r#"{"n": 149.0}"#).unwrap().n, 149);
        assert_eq!(parse(r#"{"n": 1e3}"#).unwrap().n, 1000);
        assert_eq!(parse(r#"{"n": 4294967295}"#).unwrap().n, u32::MAX);
        assert_eq!(parse(r#"{"n": 1, "m": 2.0}"#).unwrap().m, Some(2));
        assert_eq!(parse(r#"{"n": 1, "m": null}"#).unwrap().m, None);
        assert_eq!(parse(r#"{"n": 1}"#).unwrap().m, None);
        for bad in [
            r#"{"n": 7.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": -0.5}"#,
            r#"{"n": 4294967296}"#,
            r#"{"n": 4294967296.0}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": "7"}"#,
            r#"{"n": 1, "m": 0.5}"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert!(
                e.contains("integer") || e.contains("invalid type"),
                "{bad}: {e}"
            );
        }
    }
}
