//! The last resort against a panic while a statement runs (in planning, in
//! DataFusion, or in encoding a value): the statement fails with XX000 and the
//! connection keeps serving. Errors are returned, never panicked, by design;
//! this only keeps a bug from closing the client's connection.

use std::future::Future;

use futures::{FutureExt, StreamExt};
use pgwire::error::{PgWireError, PgWireResult};

/// Runs `work`; a panic becomes XX000 for this statement instead of ending the
/// connection. A last resort: errors are returned, never panicked, by design.
pub async fn unpanicked<T>(work: impl Future<Output = PgWireResult<T>>) -> PgWireResult<T> {
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(panicked(panic)),
    }
}

/// `rows`, ending with XX000 if producing or encoding them panics.
pub fn unpanicked_stream<T: Send + 'static>(
    rows: impl futures::Stream<Item = PgWireResult<T>> + Send + 'static,
) -> impl futures::Stream<Item = PgWireResult<T>> + Send + 'static {
    std::panic::AssertUnwindSafe(rows)
        .catch_unwind()
        .map(|item| item.unwrap_or_else(|panic| Err(panicked(panic))))
}

fn panicked(panic: Box<dyn std::any::Any + Send>) -> PgWireError {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into());
    tracing::error!(cause = %what, "a statement panicked; reported as XX000, the connection stays open");
    PgWireError::UserError(Box::new(pgwire::error::ErrorInfo::new(
        "ERROR".into(),
        "XX000".into(),
        format!(
            "internal error: lambdadb failed while running this statement ({what}); the connection is still usable, please report the statement"
        ),
    )))
}
