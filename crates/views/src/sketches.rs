//! Mergeable sketch states for `approx_distinct` and `approx_percentile_cont` in
//! materialized views.
//!
//! DataFusion's own accumulators keep their sketches private, so a view's partial
//! state could not be stored by the batch layer and merged with the speed layer's.
//! These aggregates expose the sketch as a `bytea` value:
//!
//! - `__hll_sketch(x)`: a HyperLogLog of `x` (2^14 registers, as DataFusion's
//!   `approx_distinct`: standard error 0.81%); `__hll_merge(s)` unions sketches;
//!   `__hll_count(s)` unions them and estimates the distinct count.
//! - `__tdigest_sketch(x [, size])`: a t-digest of `x` (DataFusion's `TDigest`,
//!   100 centroids unless `size` says otherwise); `__tdigest_merge(s)` merges;
//!   `__tdigest_quantile(s, q)` merges and estimates the `q` quantile.
//!
//! Values are hashed with XXH3 over a fixed byte form of each type, so a sketch
//! written by one release is merged correctly by the next.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion_functions_aggregate_common::tdigest::{Centroid, TDigest};
use twox_hash::XxHash3_64;

const HLL_P: u32 = 14;
const HLL_M: usize = 1 << HLL_P;
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
/// t-digest centroids unless the call names a size (DataFusion's default).
const TDIGEST_SIZE: usize = 100;
/// The most centroids a size may ask for: the digest allocates them up front.
const MAX_TDIGEST_SIZE: i64 = 100_000;

/// Registers the six aggregates in `ctx`.
pub fn register(ctx: &SessionContext) {
    for (name, kind) in [
        ("__hll_sketch", Kind::HllSketch),
        ("__hll_merge", Kind::HllMerge),
        ("__hll_count", Kind::HllCount),
        ("__tdigest_sketch", Kind::DigestSketch),
        ("__tdigest_merge", Kind::DigestMerge),
        ("__tdigest_quantile", Kind::DigestQuantile),
    ] {
        ctx.register_udaf(AggregateUDF::new_from_impl(Sketch {
            name,
            kind,
            signature: Signature::variadic_any(Volatility::Immutable),
        }));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    HllSketch,
    HllMerge,
    HllCount,
    DigestSketch,
    DigestMerge,
    DigestQuantile,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Sketch {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

impl AggregateUDFImpl for Sketch {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let want = match self.kind {
            Kind::HllSketch | Kind::HllMerge | Kind::HllCount | Kind::DigestMerge => 1..=1,
            Kind::DigestSketch => 1..=2,
            Kind::DigestQuantile => 2..=2,
        };
        if !want.contains(&args.len()) {
            return Err(DataFusionError::Plan(format!(
                "{} takes {want:?} arguments",
                self.name
            )));
        }
        Ok(match self.kind {
            Kind::HllCount => DataType::Int64,
            Kind::DigestQuantile => DataType::Float64,
            _ => DataType::Binary,
        })
    }

    fn is_nullable(&self) -> bool {
        self.kind == Kind::DigestQuantile
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let mut fields = vec![Arc::new(Field::new(
            format!("{}[sketch]", args.name),
            DataType::Binary,
            true,
        ))];
        if self.kind == Kind::DigestQuantile {
            fields.push(Arc::new(Field::new(
                format!("{}[q]", args.name),
                DataType::Float64,
                true,
            )));
        }
        Ok(fields)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(match self.kind {
            Kind::HllSketch | Kind::HllMerge | Kind::HllCount => Box::new(HllAcc {
                kind: self.kind,
                registers: vec![0; HLL_M],
            }),
            _ => Box::new(DigestAcc {
                kind: self.kind,
                digest: TDigest::new(TDIGEST_SIZE),
                buffer: Vec::new(),
                q: None,
            }),
        })
    }
}

fn binary(a: &ArrayRef) -> Result<&BinaryArray> {
    a.as_binary_opt::<i32>()
        .ok_or_else(|| DataFusionError::Internal(format!("sketch state is {}", a.data_type())))
}

#[derive(Debug)]
struct HllAcc {
    kind: Kind,
    registers: Vec<u8>,
}

impl HllAcc {
    fn add_hash(&mut self, h: u64) {
        let idx = (h >> (64 - HLL_P)) as usize;
        let rest = (h << HLL_P) | (1 << (HLL_P - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        if rank > self.registers[idx] {
            self.registers[idx] = rank;
        }
    }

    fn add_values(&mut self, a: &ArrayRef) -> Result<()> {
        match a.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let s = cast(a, &DataType::Utf8)?;
                for v in s.as_string::<i32>().iter().flatten() {
                    self.add_hash(XxHash3_64::oneshot(v.as_bytes()));
                }
            }
            DataType::Binary => {
                for v in a.as_binary::<i32>().iter().flatten() {
                    self.add_hash(XxHash3_64::oneshot(v));
                }
            }
            DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                let f = cast(a, &DataType::Float64)?;
                for v in f.as_primitive::<Float64Type>().iter().flatten() {
                    // -0.0 and 0.0 are one value.
                    let v = if v == 0.0 { 0.0f64 } else { v };
                    self.add_hash(XxHash3_64::oneshot(&v.to_bits().to_le_bytes()));
                }
            }
            t if t.is_integer()
                || t.is_temporal()
                || matches!(t, DataType::Boolean | DataType::Duration(_)) =>
            {
                let i = cast(a, &DataType::Int64)?;
                for v in i.as_primitive::<Int64Type>().iter().flatten() {
                    self.add_hash(XxHash3_64::oneshot(&v.to_le_bytes()));
                }
            }
            _ => {
                let s = cast(a, &DataType::Utf8)?;
                for v in s.as_string::<i32>().iter().flatten() {
                    self.add_hash(XxHash3_64::oneshot(v.as_bytes()));
                }
            }
        }
        Ok(())
    }

    fn merge_sketches(&mut self, a: &ArrayRef) -> Result<()> {
        for bytes in binary(a)?.iter().flatten() {
            match bytes.split_first() {
                Some((&DENSE, regs)) if regs.len() == HLL_M => {
                    for (r, v) in self.registers.iter_mut().zip(regs) {
                        *r = (*r).max(*v);
                    }
                }
                Some((&SPARSE, pairs)) if pairs.len().is_multiple_of(3) => {
                    for p in pairs.chunks_exact(3) {
                        let idx = u16::from_le_bytes([p[0], p[1]]) as usize;
                        if idx < HLL_M {
                            self.registers[idx] = self.registers[idx].max(p[2]);
                        }
                    }
                }
                _ => {
                    return Err(DataFusionError::Execution(
                        "corrupt distinct-count sketch".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Dense registers, or (index, value) pairs when that is shorter: most groups
    /// of a view see few distinct values.
    fn encode(&self) -> Vec<u8> {
        let set = self.registers.iter().filter(|r| **r > 0).count();
        if set * 3 < HLL_M {
            let mut out = Vec::with_capacity(1 + set * 3);
            out.push(SPARSE);
            for (i, r) in self.registers.iter().enumerate().filter(|(_, r)| **r > 0) {
                out.extend_from_slice(&(i as u16).to_le_bytes());
                out.push(*r);
            }
            out
        } else {
            let mut out = Vec::with_capacity(1 + HLL_M);
            out.push(DENSE);
            out.extend_from_slice(&self.registers);
            out
        }
    }

    /// The HyperLogLog estimate, with linear counting for small cardinalities.
    fn estimate(&self) -> i64 {
        let m = HLL_M as f64;
        let zeros = self.registers.iter().filter(|r| **r == 0).count();
        let sum: f64 = self
            .registers
            .iter()
            .map(|r| 2f64.powi(-i32::from(*r)))
            .sum();
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let e = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        e.round() as i64
    }
}

impl Accumulator for HllAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        match self.kind {
            Kind::HllSketch => self.add_values(&values[0]),
            _ => self.merge_sketches(&values[0]),
        }
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.merge_sketches(&states[0])
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(self.encode()))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(match self.kind {
            Kind::HllCount => ScalarValue::Int64(Some(self.estimate())),
            _ => ScalarValue::Binary(Some(self.encode())),
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.registers.capacity()
    }
}

#[derive(Debug)]
struct DigestAcc {
    kind: Kind,
    digest: TDigest,
    /// Values not merged into the digest yet (merging sorts them).
    buffer: Vec<f64>,
    q: Option<f64>,
}

impl DigestAcc {
    fn flush(&mut self) {
        if !self.buffer.is_empty() {
            let values = std::mem::take(&mut self.buffer);
            self.digest = self.digest.merge_unsorted_f64(values);
        }
    }

    fn merge_sketches(&mut self, a: &ArrayRef) -> Result<()> {
        self.flush();
        let mut digests = vec![self.digest.clone()];
        for bytes in binary(a)?.iter().flatten() {
            digests.push(decode_digest(bytes)?);
        }
        self.digest = TDigest::merge_digests(&digests);
        Ok(())
    }

    fn take_q(&mut self, a: &ArrayRef) -> Result<()> {
        if self.q.is_none() {
            let f = cast(a, &DataType::Float64)?;
            self.q = f.as_primitive::<Float64Type>().iter().flatten().next();
            if let Some(q) = self.q
                && !(0.0..=1.0).contains(&q)
            {
                return Err(DataFusionError::Execution(format!(
                    "percentile {q} is not between 0 and 1"
                )));
            }
        }
        Ok(())
    }
}

impl Accumulator for DigestAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        match self.kind {
            Kind::DigestSketch => {
                if let Some(size) = values.get(1) {
                    let s = cast(size, &DataType::Int64)?;
                    if let Some(n) = s.as_primitive::<Int64Type>().iter().flatten().next()
                        && self.digest.count() == 0.0
                        && n > 0
                    {
                        // The digest allocates its centroid buffer at this size.
                        if n > MAX_TDIGEST_SIZE {
                            return Err(DataFusionError::Plan(format!(
                                "approx_percentile_cont size {n} is larger than {MAX_TDIGEST_SIZE} centroids; use a smaller size (100 is the default)"
                            )));
                        }
                        self.digest = TDigest::new(n as usize);
                    }
                }
                let f = cast(&values[0], &DataType::Float64)?;
                self.buffer
                    .extend(f.as_primitive::<Float64Type>().iter().flatten());
                if self.buffer.len() >= 8192 {
                    self.flush();
                }
                Ok(())
            }
            Kind::DigestQuantile => {
                self.take_q(&values[1])?;
                self.merge_sketches(&values[0])
            }
            _ => self.merge_sketches(&values[0]),
        }
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        if let Some(q) = states.get(1) {
            self.take_q(q)?;
        }
        self.merge_sketches(&states[0])
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.flush();
        let mut out = vec![ScalarValue::Binary(Some(encode_digest(&self.digest)))];
        if self.kind == Kind::DigestQuantile {
            out.push(ScalarValue::Float64(self.q));
        }
        Ok(out)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.flush();
        Ok(match self.kind {
            Kind::DigestQuantile => ScalarValue::Float64(match self.q {
                Some(q) if self.digest.count() > 0.0 => Some(self.digest.estimate_quantile(q)),
                _ => None,
            }),
            _ => ScalarValue::Binary(Some(encode_digest(&self.digest))),
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + std::mem::size_of_val(self.digest.centroids())
            + self.buffer.capacity() * 8
    }
}

/// `max_size, sum, count, max, min, n, (mean, weight) * n` as little-endian f64s.
fn encode_digest(d: &TDigest) -> Vec<u8> {
    let c = d.centroids();
    let mut v = vec![
        d.max_size() as f64,
        d.sum(),
        d.count(),
        d.max(),
        d.min(),
        c.len() as f64,
    ];
    for x in c {
        v.push(x.mean());
        v.push(x.weight());
    }
    v.iter().flat_map(|f| f.to_le_bytes()).collect()
}

fn decode_digest(bytes: &[u8]) -> Result<TDigest> {
    let corrupt = || DataFusionError::Execution("corrupt percentile sketch".into());
    if !bytes.len().is_multiple_of(8) || bytes.len() < 48 {
        return Err(corrupt());
    }
    let f: Vec<f64> = bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    // Sketches can arrive from a client (`__tdigest_merge(bytea)`): every
    // count is checked before it sizes an allocation.
    let n = f[5] as usize;
    if n.checked_mul(2).and_then(|c| c.checked_add(6)) != Some(f.len()) {
        return Err(corrupt());
    }
    let max_size = f[0] as usize;
    if max_size == 0 || max_size as i64 > MAX_TDIGEST_SIZE {
        return Err(corrupt());
    }
    let centroids = f[6..]
        .chunks_exact(2)
        .map(|c| Centroid::new(c[0], c[1]))
        .collect();
    TDigest::try_from_parts(max_size, f[1], f[2], f[3], f[4], centroids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    #[test]
    fn hll_sketches_merge_to_the_union() {
        let mut a = HllAcc {
            kind: Kind::HllSketch,
            registers: vec![0; HLL_M],
        };
        let mut b = HllAcc {
            kind: Kind::HllSketch,
            registers: vec![0; HLL_M],
        };
        let xs: ArrayRef = Arc::new(Int64Array::from_iter_values(0..60_000));
        let ys: ArrayRef = Arc::new(Int64Array::from_iter_values(40_000..100_000));
        a.update_batch(&[xs]).unwrap();
        b.update_batch(&[ys]).unwrap();
        let sa: ArrayRef = Arc::new(BinaryArray::from_vec(vec![&a.encode()]));
        let sb: ArrayRef = Arc::new(BinaryArray::from_vec(vec![&b.encode()]));
        let mut c = HllAcc {
            kind: Kind::HllCount,
            registers: vec![0; HLL_M],
        };
        c.update_batch(&[sa]).unwrap();
        c.merge_batch(&[sb]).unwrap();
        let e = c.estimate() as f64;
        assert!((e - 100_000.0).abs() / 100_000.0 < 0.03, "estimate {e}");
        // Small sets are (nearly) exact and stored sparse.
        let mut s = HllAcc {
            kind: Kind::HllSketch,
            registers: vec![0; HLL_M],
        };
        s.update_batch(&[Arc::new(Int64Array::from_iter_values(0..50)) as ArrayRef])
            .unwrap();
        assert_eq!(s.encode()[0], SPARSE);
        assert_eq!(s.estimate(), 50);
    }

    #[test]
    fn digests_round_trip_and_merge() {
        let d = TDigest::new(100).merge_unsorted_f64((0..1000).map(f64::from).collect());
        let back = decode_digest(&encode_digest(&d)).unwrap();
        assert_eq!(back.count(), 1000.0);
        let e = TDigest::new(100).merge_unsorted_f64((1000..2000).map(f64::from).collect());
        let m = TDigest::merge_digests(&[back, e]);
        let median = m.estimate_quantile(0.5);
        assert!((median - 1000.0).abs() < 30.0, "median {median}");
        assert!(decode_digest(&[1, 2, 3]).is_err());
    }
}
