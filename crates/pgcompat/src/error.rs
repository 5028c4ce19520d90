//! Errors of the query layer, each with the SQLSTATE PostgreSQL would send.

use datafusion::error::DataFusionError;

/// Why a statement failed, as one of PostgreSQL's error conditions; [`QueryError::sqlstate`]
/// gives each variant's code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueryError {
    /// The statement does not parse: syntax_error, 42601.
    #[error("{0}")]
    Syntax(String),
    /// A relation named in the statement does not exist: undefined_table, 42P01.
    #[error("{0}")]
    UndefinedTable(String),
    /// A column named in the statement does not exist: undefined_column, 42703.
    #[error("{0}")]
    UndefinedColumn(String),
    /// A function named in the statement does not exist: undefined_function, 42883.
    #[error("{0}")]
    UndefinedFunction(String),
    /// A table or view of that name already exists: duplicate_table, 42P07.
    #[error("{0}")]
    DuplicateObject(String),
    /// An object other than a relation (a setting) does not exist: undefined_object, 42704.
    #[error("{0}")]
    UndefinedObject(String),
    /// A statement sent inside an aborted transaction: in_failed_sql_transaction, 25P02.
    #[error("{0}")]
    InFailedTransaction(String),
    /// The statement cannot run inside a transaction block: active_sql_transaction, 25001.
    #[error("{0}")]
    ActiveTransaction(String),
    /// A write on a process that does not hold the writer lease (a reader
    /// replica), as PostgreSQL refuses writes on a standby:
    /// read_only_sql_transaction, 25006.
    #[error("{0}")]
    ReadOnlyReplica(String),
    /// Something the statement needs is not in the required state (a stopped
    /// partition): object_not_in_prerequisite_state, 55000.
    #[error("{0}")]
    NotInPrerequisiteState(String),
    /// The statement was cancelled or ran past `statement_timeout`: query_canceled, 57014.
    #[error("{0}")]
    QueryCanceled(String),
    /// The user's role may not run the statement: insufficient_privilege, 42501.
    #[error("{0}")]
    InsufficientPrivilege(String),
    /// The query needs more memory than `query_memory_limit` allows: out_of_memory, 53200.
    #[error("{0}")]
    OutOfMemory(String),
    /// A definition that is inconsistent, or a statement DataFusion cannot plan:
    /// invalid_object_definition, 42P17.
    #[error("{0}")]
    InvalidDefinition(String),
    /// Something lambdadb or DataFusion does not do: feature_not_supported, 0A000.
    #[error("{0}")]
    FeatureNotSupported(String),
    /// An identifier longer than PostgreSQL's 63 bytes: name_too_long, 42622.
    #[error("{0}")]
    NameTooLong(String),
    /// A value or result larger than a limit allows: program_limit_exceeded, 54000.
    #[error("{0}")]
    ProgramLimit(String),
    /// A column used outside an aggregate is not grouped: grouping_error, 42803.
    #[error("{0}")]
    Grouping(String),
    /// A parameter, option or value the statement gives is not acceptable:
    /// invalid_parameter_value, 22023.
    #[error("{0}")]
    InvalidParameter(String),
    /// The data cannot be processed (division by zero, an import file that does not fit):
    /// data_exception, 22000.
    #[error("{0}")]
    DataException(String),
    /// A NULL for a column declared NOT NULL: not_null_violation, 23502.
    #[error("{0}")]
    NotNullViolation(String),
    /// The statement names an object of the wrong kind (a view where it needs a table):
    /// wrong_object_type, 42809.
    #[error("{0}")]
    WrongObjectType(String),
    /// The Kafka broker did not accept what the statement wrote: connection_failure, 08006.
    #[error("{0}")]
    Unavailable(String),
    /// Reading or writing a file failed: io_error, 58030.
    #[error("{0}")]
    Io(String),
    /// Any other failure, usually a bug: internal_error, XX000.
    #[error("{0}")]
    Internal(String),
}

/// A result whose error is a [`QueryError`].
pub type Result<T> = std::result::Result<T, QueryError>;

impl QueryError {
    /// The PostgreSQL error code for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            QueryError::Syntax(_) => "42601",
            QueryError::UndefinedTable(_) => "42P01",
            QueryError::UndefinedColumn(_) => "42703",
            QueryError::UndefinedFunction(_) => "42883",
            QueryError::DuplicateObject(_) => "42P07",
            QueryError::UndefinedObject(_) => "42704",
            QueryError::InFailedTransaction(_) => "25P02",
            QueryError::ActiveTransaction(_) => "25001",
            QueryError::ReadOnlyReplica(_) => "25006",
            QueryError::NotInPrerequisiteState(_) => "55000",
            QueryError::QueryCanceled(_) => "57014",
            QueryError::InsufficientPrivilege(_) => "42501",
            QueryError::OutOfMemory(_) => "53200",
            QueryError::InvalidDefinition(_) => "42P17",
            QueryError::FeatureNotSupported(_) => "0A000",
            QueryError::NameTooLong(_) => "42622",
            QueryError::ProgramLimit(_) => "54000",
            QueryError::Grouping(_) => "42803",
            QueryError::InvalidParameter(_) => "22023",
            QueryError::DataException(_) => "22000",
            QueryError::NotNullViolation(_) => "23502",
            QueryError::WrongObjectType(_) => "42809",
            QueryError::Unavailable(_) => "08006",
            QueryError::Io(_) => "58030",
            QueryError::Internal(_) => "XX000",
        }
    }
}

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> Self {
        classify(&e)
    }
}

/// Maps a DataFusion error to the PostgreSQL error class a client expects, with a
/// message in PostgreSQL's words where DataFusion's would confuse a Postgres user.
pub fn classify(e: &DataFusionError) -> QueryError {
    let root = e.find_root();
    if let DataFusionError::External(inner) = root
        && let Some(q) = inner.downcast_ref::<QueryError>()
    {
        return q.clone();
    }
    let text = root.to_string();
    let msg = strip_prefixes(&text);
    match root {
        DataFusionError::SQL(..) => return QueryError::Syntax(syntax_message(&msg)),
        DataFusionError::SchemaError(..) if msg.contains("No field named") => {
            return QueryError::UndefinedColumn(column_message(&msg));
        }
        DataFusionError::NotImplemented(_) => return QueryError::FeatureNotSupported(msg),
        DataFusionError::ArrowError(..) | DataFusionError::Execution(_)
            if msg.contains("Divide by zero") =>
        {
            return QueryError::DataException("division by zero".into());
        }
        DataFusionError::ResourcesExhausted(_) => {
            return QueryError::OutOfMemory(format!(
                "out of memory: the query needs more than the server allows ({msg}); aggregate more, select fewer rows, or query a materialized view"
            ));
        }
        _ => {}
    }
    if let Some(name) = table_not_found(&msg) {
        return QueryError::UndefinedTable(format!(
            "relation \"{name}\" does not exist; list the tables with \\dt or SELECT * FROM information_schema.tables"
        ));
    }
    if msg.contains("No field named") {
        return QueryError::UndefinedColumn(column_message(&msg));
    }
    if msg.contains("Invalid function") || msg.contains("function not found") {
        return QueryError::UndefinedFunction(msg);
    }
    if matches!(root, DataFusionError::Plan(_)) {
        return QueryError::InvalidDefinition(msg);
    }
    QueryError::Internal(msg)
}

fn strip_prefixes(text: &str) -> String {
    let mut t = text;
    for p in [
        "SQL error: ",
        "Error during planning: ",
        "Schema error: ",
        "Execution error: ",
        "This feature is not implemented: ",
        "Arrow error: ",
    ] {
        if let Some(rest) = t.strip_prefix(p) {
            t = rest;
        }
    }
    t.trim().to_string()
}

/// `ParserError("Expected: ..., found: x at Line: 1, Column: 1")` as PostgreSQL words it.
pub fn syntax_message(msg: &str) -> String {
    let inner = msg
        .strip_prefix("ParserError(\"")
        .or_else(|| msg.strip_prefix("TokenizerError(\""))
        .and_then(|m| m.strip_suffix("\")"))
        .unwrap_or(msg);
    format!("syntax error: {inner}")
}

fn table_not_found(msg: &str) -> Option<String> {
    // DataFusion: "table 'catalog.schema.name' not found"
    let start = msg.find("table '")? + "table '".len();
    let rest = &msg[start..];
    let end = rest.find('\'')?;
    if !rest[end..].starts_with("' not found") {
        return None;
    }
    Some(
        rest[..end]
            .rsplit('.')
            .next()
            .unwrap_or(&rest[..end])
            .to_string(),
    )
}

/// "No field named foo. Valid fields are t.a, t.b." into PostgreSQL's wording,
/// keeping DataFusion's list of valid columns as the hint.
fn column_message(msg: &str) -> String {
    let rest = msg.split("No field named ").nth(1).unwrap_or("?");
    // The name ends at the first sentence break (". " or ".\n"); names may
    // hold dots themselves (`c.relname`).
    let end = [". ", ".\n"]
        .iter()
        .filter_map(|sep| rest.find(sep))
        .min()
        .unwrap_or(rest.len());
    let name = rest[..end].trim_end_matches('.').trim_matches('"');
    if let Some(i) = rest.find("Did you mean '") {
        let tail = &rest[i + "Did you mean '".len()..];
        if let Some(j) = tail.find('\'') {
            return format!(
                "column \"{name}\" does not exist; did you mean \"{}\"?",
                &tail[..j]
            );
        }
    }
    match msg.find("Valid fields are") {
        Some(i) => format!(
            "column \"{name}\" does not exist; {}",
            msg[i..]
                .trim_end_matches('.')
                .replacen("Valid fields are", "valid columns are", 1)
        ),
        None => format!("column \"{name}\" does not exist"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_name_is_extracted() {
        assert_eq!(
            table_not_found("table 'lambdadb.public.nope' not found").as_deref(),
            Some("nope")
        );
        assert_eq!(table_not_found("something else"), None);
    }

    #[test]
    fn qualified_column_names_stay_whole() {
        let m = column_message("No field named c.reloptions. Valid fields are c.oid.");
        assert!(
            m.starts_with("column \"c.reloptions\" does not exist"),
            "{m}"
        );
    }

    #[test]
    fn column_message_names_valid_columns() {
        assert_eq!(
            column_message(
                "No field named c.relopts. Did you mean 'c.reloftype'?. Valid fields are c.oid."
            ),
            "column \"c.relopts\" does not exist; did you mean \"c.reloftype\"?"
        );
        assert_eq!(
            column_message("No field named i.\nValid fields are i.value."),
            "column \"i\" does not exist; valid columns are i.value"
        );
        let m = column_message("No field named nope. Valid fields are events.a, events.b.");
        assert_eq!(
            m,
            "column \"nope\" does not exist; valid columns are events.a, events.b"
        );
    }
}
