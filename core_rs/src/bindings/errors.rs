//! The Python exception hierarchy, created in Rust (`nexuscart._core`):
//!
//! ```text
//! NexusCartError(Exception)
//! ├── InvalidArgument(NexusCartError, ValueError)
//! │   └── OutOfRange(InvalidArgument)
//! └── AuthError(NexusCartError)
//! ```
//!
//! `NexusCartError` and `AuthError` come from `create_exception!`. The subclasses have two bases (so
//! that callers catching `ValueError` still catch them), which `create_exception!`
//! cannot express, so they are built once with `type(name, bases, namespace)` and kept
//! in a `PyOnceLock`.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::error::CoreError;

const MODULE: &str = "nexuscart._core";

create_exception!(
    nexuscart._core,
    NexusCartError,
    PyException,
    "Base class of every error raised by NexusCart's core."
);

create_exception!(
    nexuscart._core,
    AuthError,
    NexusCartError,
    "A buyer token was rejected; the message is the reason (e.g. 'token expired')."
);

static INVALID_ARGUMENT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static OUT_OF_RANGE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn new_exception_type(
    py: Python<'_>,
    name: &str,
    doc: &str,
    bases: Bound<'_, PyTuple>,
) -> PyResult<Py<PyType>> {
    let namespace = PyDict::new(py);
    namespace.set_item("__module__", MODULE)?;
    namespace.set_item("__doc__", doc)?;
    let created = py.get_type::<PyType>().call1((name, bases, namespace))?;
    Ok(created.cast_into::<PyType>()?.unbind())
}

/// `InvalidArgument(NexusCartError, ValueError)`.
pub fn invalid_argument(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    INVALID_ARGUMENT
        .get_or_try_init(py, || {
            let bases = PyTuple::new(
                py,
                [
                    py.get_type::<NexusCartError>(),
                    py.get_type::<PyValueError>(),
                ],
            )?;
            new_exception_type(
                py,
                "InvalidArgument",
                "An argument has an unusable value (also a ValueError).",
                bases,
            )
        })
        .map(|t| t.bind(py))
}

/// `OutOfRange(InvalidArgument)`.
pub fn out_of_range(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    OUT_OF_RANGE
        .get_or_try_init(py, || {
            let bases = PyTuple::new(py, [invalid_argument(py)?.clone()])?;
            new_exception_type(
                py,
                "OutOfRange",
                "A number is outside the range its parameter or target type accepts.",
                bases,
            )
        })
        .map(|t| t.bind(py))
}

/// The Python exception for a core error.
pub fn to_pyerr(py: Python<'_>, err: &CoreError) -> PyErr {
    let ty = match err {
        CoreError::InvalidArgument { .. } => invalid_argument(py),
        CoreError::OutOfRange { .. } => out_of_range(py),
        CoreError::Auth(reason) => return AuthError::new_err(reason.reason()),
    };
    match ty {
        Ok(ty) => PyErr::from_type(ty.clone(), err.to_string()),
        Err(creating_failed) => creating_failed,
    }
}

impl From<CoreError> for PyErr {
    fn from(err: CoreError) -> Self {
        // Errors are converted where the GIL is held; attaching again is a counter bump.
        Python::attach(|py| to_pyerr(py, &err))
    }
}

/// Registers the exception classes.
pub fn init_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("NexusCartError", py.get_type::<NexusCartError>())?;
    m.add("InvalidArgument", invalid_argument(py)?)?;
    m.add("OutOfRange", out_of_range(py)?)?;
    m.add("AuthError", py.get_type::<AuthError>())?;
    Ok(())
}
