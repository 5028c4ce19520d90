//! `statement_timeout` over the whole execution, not only planning: the row
//! stream ends with 57014 when the deadline passes, and dropping it stops
//! DataFusion's work. A protocol cancel request ends it the same way.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::Stream;
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;
use tokio::time::Sleep;

use crate::session::Session;

/// A result stream that ends with 57014 once the statement timeout passes or a cancel
/// request arrives; built by [`with_deadline`].
pub struct Deadline {
    inner: Option<SendableRecordBatchStream>,
    sleep: Option<Pin<Box<Sleep>>>,
    cancel: Pin<Box<OwnedNotified>>,
    timeout_ms: u64,
    session: Arc<Session>,
}

/// Wraps `stream` with the session's statement timeout (0: none). Errors mark the
/// session's transaction as failed, as PostgreSQL does.
pub fn with_deadline(
    stream: SendableRecordBatchStream,
    timeout_ms: u64,
    session: Arc<Session>,
    cancel: Arc<Notify>,
) -> Deadline {
    Deadline {
        inner: Some(stream),
        cancel: Box::pin(cancel.notified_owned()),
        sleep: (timeout_ms > 0)
            .then(|| Box::pin(tokio::time::sleep(Duration::from_millis(timeout_ms)))),
        timeout_ms,
        session,
    }
}

impl Stream for Deadline {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.inner.is_none() {
            return Poll::Ready(None);
        }
        if self.cancel.as_mut().poll(cx).is_ready() {
            self.inner = None;
            self.session.statement_failed();
            return Poll::Ready(Some(Err(DataFusionError::External(Box::new(
                lambdadb_pgcompat::QueryError::QueryCanceled(
                    "canceling statement due to user request".into(),
                ),
            )))));
        }
        if let Some(sleep) = self.sleep.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            // Dropping the stream cancels the plan's remaining work.
            self.inner = None;
            self.session.statement_failed();
            let ms = self.timeout_ms;
            return Poll::Ready(Some(Err(DataFusionError::External(Box::new(
                lambdadb_pgcompat::QueryError::QueryCanceled(format!(
                    "canceling statement due to statement timeout ({ms} ms)"
                )),
            )))));
        }
        let polled = self
            .inner
            .as_mut()
            .expect("checked above")
            .as_mut()
            .poll_next(cx);
        match polled {
            Poll::Ready(Some(Err(e))) => {
                self.session.statement_failed();
                self.inner = None;
                let pool = &self.session.context().runtime_env().memory_pool;
                Poll::Ready(Some(Err(lambdadb_serving::memory::explain(pool, e))))
            }
            Poll::Ready(None) => {
                self.inner = None;
                Poll::Ready(None)
            }
            other => other,
        }
    }
}
