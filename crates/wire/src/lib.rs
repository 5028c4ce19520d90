//! The Postgres wire frontend (pgwire): startup, authentication, TLS, simple and
//! extended query protocol, text and binary results, COPY, cancel requests,
//! timeouts and SQLSTATE errors, and the per-connection [`session::Session`]
//! that routes each statement to the serving layer, to session commands or to
//! DataFusion. A connection costs little until it logs in ([`logins`]: the
//! session is built after authentication), and a panic while a statement runs
//! fails only that statement ([`panics`]).
//!
//! It builds on `serving` and `pgcompat` (and `common`); only the binary imports
//! it. Unit tests sit beside the code; protocol and client behaviour is tested
//! with real clients (psql, psycopg, asyncpg, pgJDBC, node-postgres) in
//! `integration/`.

#![warn(missing_docs)]

pub mod auth;
pub mod cancel;
pub mod copy;
pub mod deadline;
pub mod encode;
#[cfg(test)]
mod encode_props;
pub mod error;
pub mod float;
pub mod handler;
pub mod idle;
pub mod logins;
pub mod numeric;
pub mod panics;
pub mod params;
pub mod server;
pub mod session;
pub mod slots;
pub mod tls;

pub use server::serve;
