//! Argument conversion that reports bad values through the `nexuscart` hierarchy:
//! an int that does not fit raises `OutOfRange` (not a bare `OverflowError`), a str
//! that cannot be UTF-8 encoded raises `InvalidArgument`. Wrong *types* still raise
//! `TypeError`, as everywhere in Python.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyString};

use crate::error::CoreError;

/// Integer types an `int` argument can be narrowed to.
pub trait IntDomain: Sized + Copy {
    /// What the value is called in error messages (PostgreSQL's type names for the
    /// signed ones).
    const DOMAIN: &'static str;
    /// Smallest value.
    const MIN: i128;
    /// Largest value.
    const MAX: i128;
    /// Narrow a Python int.
    fn narrow(int: &Bound<'_, PyInt>) -> PyResult<Self>;
}

macro_rules! int_domain {
    ($t:ty, $domain:literal) => {
        impl IntDomain for $t {
            const DOMAIN: &'static str = $domain;
            const MIN: i128 = <$t>::MIN as i128;
            const MAX: i128 = <$t>::MAX as i128;
            #[inline]
            fn narrow(int: &Bound<'_, PyInt>) -> PyResult<Self> {
                int.extract::<$t>()
            }
        }
    };
}

int_domain!(i32, "int4 value");
int_domain!(i64, "int8 value");
int_domain!(u32, "uint32 value");
int_domain!(u64, "uint64 value");

fn out_of_range<T: IntDomain>(name: &'static str, int: &Bound<'_, PyInt>) -> PyErr {
    let shown = int
        .str()
        .map(|s| s.to_string())
        .unwrap_or_else(|_| String::from("?"));
    CoreError::out_of_range(name, shown, T::MIN, T::MAX).into()
}

/// Convert a Python int to `T`, naming the argument in the error.
#[inline]
pub fn int_arg<T: IntDomain>(obj: &Bound<'_, PyAny>, name: &'static str) -> PyResult<T> {
    let int = obj.cast::<PyInt>()?;
    T::narrow(int).map_err(|_| out_of_range::<T>(name, int))
}

/// An `int` argument narrowed to `T`; out-of-range values raise `OutOfRange` naming the
/// target domain (PyO3 does not tell an extractor which argument it is converting; it
/// adds a "while processing 'arg'" note to the exception instead).
#[derive(Debug, Clone, Copy)]
pub struct Int<T>(pub T);

impl<'a, 'py, T: IntDomain> FromPyObject<'a, 'py> for Int<T> {
    type Error = PyErr;

    #[inline]
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        int_arg::<T>(&obj, T::DOMAIN).map(Int)
    }
}

/// The UTF-8 bytes of a `str`.
#[inline]
pub fn utf8<'a>(s: &'a Bound<'_, PyString>, name: &'static str) -> PyResult<&'a str> {
    s.to_str().map_err(|_| {
        PyErr::from(CoreError::invalid(
            name,
            "string is not encodable as UTF-8 (lone surrogate?)",
        ))
    })
}

/// The bytes of a `str` (UTF-8 encoded) or `bytes` object, for Redis keys.
#[inline]
pub fn key_bytes<'a>(obj: &'a Bound<'_, PyAny>, name: &'static str) -> PyResult<&'a [u8]> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(b.as_bytes());
    }
    match obj.cast::<PyString>() {
        Ok(s) => utf8(s, name).map(str::as_bytes),
        Err(_) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{name} must be str or bytes, not {}",
            obj.get_type().name()?
        ))),
    }
}

/// Reject a bare `str`/`bytes` where a sequence of items is expected (iterating it
/// would silently yield characters or ints).
pub fn not_a_string(values: &Bound<'_, PyAny>, name: &'static str) -> PyResult<()> {
    if values.is_instance_of::<PyString>() || values.is_instance_of::<PyBytes>() {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{name} must be a sequence of items, not a single {}",
            values.get_type().name()?
        )));
    }
    Ok(())
}

/// Length hint for pre-allocation (0 when the object has no `len`).
pub fn len_hint(values: &Bound<'_, PyAny>) -> usize {
    values.len().unwrap_or(0)
}
