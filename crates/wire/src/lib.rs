//! The Postgres wire frontend (pgwire): startup, simple and extended query
//! protocol, text and binary results, SQLSTATE errors. Depends on the query layer.

pub mod auth;
pub mod cancel;
pub mod copy;
pub mod deadline;
pub mod encode;
pub mod error;
pub mod float;
pub mod handler;
pub mod idle;
pub mod numeric;
pub mod params;
pub mod server;
pub mod slots;
pub mod tls;

pub use server::serve;
