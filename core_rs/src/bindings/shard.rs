//! Python class `ShardRouter` and the hash / slot functions.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyString};

use super::convert::{Int, int_arg, key_bytes, len_hint, not_a_string, utf8};
use super::gil::run_batch;
use crate::error::CoreError;
use crate::shard::{
    self, MAX_SHARD_COUNT, PackedBytes, SLOT_COUNT, ShardRouter, key_slot, uuid_bytes,
};

/// Citus-compatible router: the index of the shard (ordered by `shardminvalue`) that
/// holds a distribution column value, for a hash-distributed table with
/// `shard_count` shards.
#[pyclass(name = "ShardRouter", module = "nexuscart._core", frozen)]
#[derive(Debug)]
pub struct PyShardRouter {
    inner: ShardRouter,
}

/// Copy a sequence of str into one buffer (the GIL is needed only for this part).
fn pack_texts(values: &Bound<'_, PyAny>, name: &'static str) -> PyResult<PackedBytes> {
    not_a_string(values, name)?;
    let n = len_hint(values);
    let mut packed = PackedBytes::with_capacity(n, n * 16);
    for item in values.try_iter()? {
        let item = item?;
        packed.push(utf8(item.cast::<PyString>()?, "text in values")?.as_bytes());
    }
    Ok(packed)
}

#[pymethods]
impl PyShardRouter {
    #[new]
    fn new(shard_count: &Bound<'_, PyInt>) -> PyResult<Self> {
        let count = int_arg::<u32>(shard_count, "shard_count").map_err(|_| {
            let shown = shard_count.str().map(|s| s.to_string()).unwrap_or_default();
            PyErr::from(CoreError::out_of_range(
                "shard_count",
                shown,
                1,
                MAX_SHARD_COUNT,
            ))
        })?;
        Ok(Self {
            inner: ShardRouter::new(count)?,
        })
    }

    /// Number of shards.
    #[getter]
    fn shard_count(&self) -> u32 {
        self.inner.shard_count()
    }

    /// `(shardminvalue, shardmaxvalue)` of every shard, in index order.
    fn intervals(&self) -> Vec<(i32, i32)> {
        self.inner.intervals()
    }

    /// Shard of an already hashed value (an int4 from a PostgreSQL hash function).
    fn shard_for_hash(&self, h: Int<i32>) -> u32 {
        self.inner.shard_for_hash(h.0)
    }

    /// Shard of a bigint value.
    fn shard_for_int8(&self, v: Int<i64>) -> u32 {
        self.inner.shard_for_int8(v.0)
    }

    /// Shard of an integer (int4) value.
    fn shard_for_int4(&self, v: Int<i32>) -> u32 {
        self.inner.shard_for_int4(v.0)
    }

    /// Shard of a text value (UTF-8, deterministic collation).
    fn shard_for_text(&self, s: &Bound<'_, PyString>) -> PyResult<u32> {
        Ok(self.inner.shard_for_text(utf8(s, "text")?))
    }

    /// Shard of a uuid value given as its 16 bytes (`uuid.UUID(...).bytes`).
    fn shard_for_uuid(&self, b: &Bound<'_, PyBytes>) -> PyResult<u32> {
        Ok(self.inner.shard_for_uuid_slice(b.as_bytes())?)
    }

    /// Shards of many bigint values.
    fn shards_for_int8(&self, py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
        not_a_string(values, "values")?;
        let mut ints = Vec::with_capacity(len_hint(values));
        for item in values.try_iter()? {
            ints.push(int_arg::<i64>(&item?, "int8 value in values")?);
        }
        let router = self.inner;
        Ok(run_batch(py, ints.len(), move || {
            router.shards_for_int8(&ints)
        }))
    }

    /// Shards of many text values.
    fn shards_for_text(&self, py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
        let packed = pack_texts(values, "values")?;
        let router = self.inner;
        Ok(run_batch(py, packed.len(), move || {
            router.shards_for_packed(&packed)
        }))
    }

    fn __repr__(&self) -> String {
        format!("ShardRouter({})", self.inner.shard_count())
    }
}

/// PostgreSQL `hashint4(v)`.
#[pyfunction]
fn hashint4(v: Int<i32>) -> i32 {
    shard::hashint4(v.0)
}

/// PostgreSQL `hashint8(v)`.
#[pyfunction]
fn hashint8(v: Int<i64>) -> i32 {
    shard::hashint8(v.0)
}

/// PostgreSQL `hashtext(s)` (UTF-8 database, deterministic collation).
#[pyfunction]
fn hashtext(s: &Bound<'_, PyString>) -> PyResult<i32> {
    Ok(shard::hashtext(utf8(s, "text")?))
}

/// PostgreSQL `uuid_hash(u)` of the 16 uuid bytes.
#[pyfunction]
fn uuid_hash(b: &Bound<'_, PyBytes>) -> PyResult<i32> {
    Ok(shard::uuid_hash(&uuid_bytes(b.as_bytes())?))
}

/// Redis Cluster hash slot of a key (`CLUSTER KEYSLOT`); str keys are UTF-8 encoded.
#[pyfunction]
fn redis_slot(key: &Bound<'_, PyAny>) -> PyResult<u16> {
    Ok(key_slot(key_bytes(key, "key")?))
}

/// Redis Cluster hash slots of many keys.
#[pyfunction]
fn redis_slots(py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Vec<u16>> {
    not_a_string(keys, "keys")?;
    let n = len_hint(keys);
    let mut packed = PackedBytes::with_capacity(n, n * 24);
    for item in keys.try_iter()? {
        packed.push(key_bytes(&item?, "key in keys")?);
    }
    Ok(run_batch(py, packed.len(), move || packed.key_slots()))
}

/// Registers `ShardRouter`, the hash functions and the constants.
pub fn init_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyShardRouter>()?;
    m.add_function(wrap_pyfunction!(hashint4, m)?)?;
    m.add_function(wrap_pyfunction!(hashint8, m)?)?;
    m.add_function(wrap_pyfunction!(hashtext, m)?)?;
    m.add_function(wrap_pyfunction!(uuid_hash, m)?)?;
    m.add_function(wrap_pyfunction!(redis_slot, m)?)?;
    m.add_function(wrap_pyfunction!(redis_slots, m)?)?;
    m.add("MAX_SHARD_COUNT", MAX_SHARD_COUNT)?;
    m.add("REDIS_SLOT_COUNT", SLOT_COUNT)?;
    Ok(())
}
