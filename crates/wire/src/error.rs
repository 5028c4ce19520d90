//! The one mapping from lambdadb errors to Postgres error responses.

use datafusion::error::DataFusionError;
use lambdadb_pgcompat::QueryError;
use pgwire::error::{ErrorInfo, PgWireError};

pub fn query_error(e: QueryError) -> ErrorInfo {
    ErrorInfo::new("ERROR".to_string(), e.sqlstate().to_string(), e.to_string())
}

pub fn to_pgwire(e: QueryError) -> PgWireError {
    PgWireError::UserError(Box::new(query_error(e)))
}

/// Errors raised while rows stream (execution errors).
pub fn datafusion_to_pgwire(e: DataFusionError) -> PgWireError {
    to_pgwire(lambdadb_pgcompat::error::classify(&e))
}

pub fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_string(),
        code.to_string(),
        message,
    )))
}
