//! `real` and `double precision` in PostgreSQL's text form. With the default
//! `extra_float_digits` (1) PostgreSQL prints the shortest text that reads back
//! exactly, in fixed notation for decimal exponents from -4 up to 14 (float8) or
//! 5 (float4), else as `1.5e+20`. pgwire prints Rust's shortest form (`5.0`,
//! `1e20`) instead, which clients parsing text and tests comparing text tell apart.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use pgwire::types::ToSqlText;
use pgwire::types::format::FormatOptions;
use postgres_types::{IsNull, ToSql, Type, to_sql_checked};

type BoxError = Box<dyn Error + Sync + Send>;

/// A float wrapper whose text form is PostgreSQL's; `fixed_below` is the
/// first decimal exponent printed in exponential notation (15 for float8, 6 for
/// float4). The binary form is the float's own.
macro_rules! pg_float {
    ($name:ident, $float:ty, $pg:ident, $fixed_below:expr) => {
        /// A float whose text form is PostgreSQL's; its binary form is the float's own.
        #[derive(Debug, Clone, Copy)]
        pub struct $name(pub $float);

        impl ToSqlText for $name {
            fn to_sql_text(
                &self,
                ty: &Type,
                out: &mut BytesMut,
                f: &FormatOptions,
            ) -> Result<IsNull, BoxError> {
                if f.extra_float_digits < 1 || !self.0.is_finite() || self.0 == 0.0 {
                    return self.0.to_sql_text(ty, out, f);
                }
                let digits = ryu::Buffer::new().format_finite(self.0).to_owned();
                out.put_slice(shortest(&digits, $fixed_below).as_bytes());
                Ok(IsNull::No)
            }
        }

        impl ToSql for $name {
            fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
                self.0.to_sql(ty, out)
            }

            fn accepts(ty: &Type) -> bool {
                *ty == Type::$pg
            }

            to_sql_checked!();
        }
    };
}

pg_float!(Float8, f64, FLOAT8, 15);
pg_float!(Float4, f32, FLOAT4, 6);

/// Rewrites ryu's shortest digits (`5.0`, `1e20`, `1.5e-7`, `0.0001`) in
/// PostgreSQL's layout; `fixed_below` is the first decimal exponent printed in
/// exponential notation.
fn shortest(ryu: &str, fixed_below: i32) -> String {
    let (sign, body) = match ryu.strip_prefix('-') {
        Some(b) => ("-", b),
        None => ("", ryu),
    };
    let (mantissa, e) = match body.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = format!("{int}{frac}");
    let leading = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_start_matches('0').trim_end_matches('0');
    if digits.is_empty() {
        return "0".into();
    }
    // Decimal exponent of the first significant digit.
    let exp = int.len() as i32 - 1 - leading as i32 + e;
    let mut out = String::from(sign);
    if (-4..fixed_below).contains(&exp) {
        if exp >= 0 {
            let n = exp as usize + 1;
            if digits.len() <= n {
                out.push_str(digits);
                out.extend(std::iter::repeat_n('0', n - digits.len()));
            } else {
                out.push_str(&digits[..n]);
                out.push('.');
                out.push_str(&digits[n..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::shortest;

    fn pg8(v: f64) -> String {
        shortest(ryu::Buffer::new().format_finite(v), 15)
    }

    #[test]
    fn matches_postgresql() {
        // Expected strings are PostgreSQL 15's `SELECT x::float8`.
        assert_eq!(pg8(5.0), "5");
        assert_eq!(pg8(-30.5), "-30.5");
        assert_eq!(pg8(10.666666666666666), "10.666666666666666");
        assert_eq!(pg8(0.0001), "0.0001");
        assert_eq!(pg8(0.00001), "1e-05");
        assert_eq!(pg8(1.5e-7), "1.5e-07");
        assert_eq!(pg8(123456789012345.0), "123456789012345");
        assert_eq!(pg8(1e15), "1e+15");
        assert_eq!(pg8(1.2345e20), "1.2345e+20");
        assert_eq!(pg8(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(pg8(1e100), "1e+100");
        assert_eq!(
            shortest(ryu::Buffer::new().format_finite(1_000_000f32), 6),
            "1e+06"
        );
        assert_eq!(
            shortest(ryu::Buffer::new().format_finite(123456f32), 6),
            "123456"
        );
    }
}
