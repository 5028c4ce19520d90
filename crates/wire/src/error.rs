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
