//! PostgreSQL `numeric` values from Arrow decimals. Arrow renders a decimal
//! exactly as text (`-12.3400`, scale kept), which is also PostgreSQL's text form;
//! the binary form is built from that text, so both formats agree by construction.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use pgwire::types::ToSqlText;
use pgwire::types::format::FormatOptions;
use postgres_types::{IsNull, ToSql, Type, to_sql_checked};

/// A decimal in PostgreSQL's text form: optional `-`, digits, optional `.digits`.
#[derive(Debug)]
pub struct Numeric<'a>(pub &'a str);

type BoxError = Box<dyn Error + Sync + Send>;

impl ToSqlText for Numeric<'_> {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format: &FormatOptions,
    ) -> Result<IsNull, BoxError> {
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}

impl ToSql for Numeric<'_> {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        write_binary(self.0, out)?;
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }

    to_sql_checked!();
}

/// The binary `numeric` layout: digit count, weight (base-10000 exponent of the
/// first digit), sign, display scale, then base-10000 digits without leading or
/// trailing zero groups.
fn write_binary(text: &str, out: &mut BytesMut) -> Result<(), BoxError> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    if !int_part
        .bytes()
        .chain(frac_part.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return Err(format!("not a decimal: {text}").into());
    }
    let int_part = int_part.trim_start_matches('0');
    // Integer digits padded on the left and fraction digits on the right to
    // whole groups of four, so group boundaries fall on the decimal point.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let digits: Vec<u8> = std::iter::repeat_n(b'0', int_pad)
        .chain(int_part.bytes())
        .chain(frac_part.bytes())
        .chain(std::iter::repeat_n(b'0', frac_pad))
        .collect();
    let mut groups: Vec<i16> = digits
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + (d - b'0') as i16))
        .collect();
    let mut weight = ((int_pad + int_part.len()) / 4) as i32 - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(i16::try_from(groups.len())?);
    out.put_i16(i16::try_from(weight)?);
    out.put_u16(if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    });
    out.put_u16(u16::try_from(frac_part.len())?);
    for g in groups {
        out.put_i16(g);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(s: &str) -> Vec<i16> {
        let mut b = BytesMut::new();
        write_binary(s, &mut b).unwrap();
        b.chunks(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn layouts_match_postgres() {
        // Values checked against PostgreSQL's numeric_send.
        assert_eq!(bin("0"), vec![0, 0, 0, 0]);
        assert_eq!(bin("0.00"), vec![0, 0, 0, 2]);
        assert_eq!(bin("1"), vec![1, 0, 0, 0, 1]);
        assert_eq!(bin("12345.678"), vec![3, 1, 0, 3, 1, 2345, 6780]);
        assert_eq!(bin("-0.0012"), vec![1, -1, 0x4000, 4, 12]);
        assert_eq!(bin("10000"), vec![1, 1, 0, 0, 1]);
        assert_eq!(bin("0.00001"), vec![1, -2, 0, 5, 1000]);
    }
}
