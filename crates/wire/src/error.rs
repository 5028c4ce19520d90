//! The one mapping from lambdadb errors to Postgres error responses.

use datafusion::error::DataFusionError;
use lambdadb_pgcompat::QueryError;
use pgwire::error::{ErrorInfo, PgWireError};

/// The ErrorResponse (severity ERROR, the error's SQLSTATE and message) for a failed statement.
pub fn query_error(e: QueryError) -> ErrorInfo {
    ErrorInfo::new("ERROR".to_string(), e.sqlstate().to_string(), e.to_string())
}

/// A failed statement's error as pgwire's error, which it sends as an ErrorResponse.
pub fn to_pgwire(e: QueryError) -> PgWireError {
    PgWireError::UserError(Box::new(query_error(e)))
}

/// Errors raised while rows stream (execution errors).
pub fn datafusion_to_pgwire(e: DataFusionError) -> PgWireError {
    to_pgwire(lambdadb_pgcompat::error::classify(&e))
}

/// A FATAL error with SQLSTATE `code`, for refusing a connection at startup.
pub fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_string(),
        code.to_string(),
        message,
    )))
}

/// 22008 (datetime_field_overflow): a value that cannot be encoded for the client.
pub fn out_of_range(message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        "22008".to_string(),
        message,
    )))
}

/// What a statement's result may still send: `lambdadb.max_result_size`
/// (0: no limit), counted in encoded bytes, for rows and COPY data alike.
pub struct ResultBudget {
    limit: u64,
    sent: u64,
}

impl ResultBudget {
    /// A budget of `limit` bytes (0: unlimited).
    pub fn new(limit: u64) -> Self {
        Self { limit, sent: 0 }
    }

    /// Counts `bytes` more; 54000 once the total passes the limit.
    pub fn spend(&mut self, bytes: u64) -> Result<(), PgWireError> {
        self.sent += bytes;
        if self.limit > 0 && self.sent > self.limit {
            return Err(result_too_large(self.limit));
        }
        Ok(())
    }
}

/// 54000 (program_limit_exceeded): a result larger than `lambdadb.max_result_size`.
fn result_too_large(limit: u64) -> PgWireError {
    PgWireError::UserError(Box::new(pgwire::error::ErrorInfo::new(
        "ERROR".into(),
        "54000".into(),
        format!(
            "result exceeds lambdadb.max_result_size ({}); add a LIMIT, aggregate, or raise it with SET lambdadb.max_result_size = '4GB'",
            lambdadb_pgcompat::pg::size_pretty(limit as i64)
        ),
    )))
}
