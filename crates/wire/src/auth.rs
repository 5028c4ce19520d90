//! Password authentication: SCRAM-SHA-256 against PostgreSQL-style verifiers
//! from the configuration (`SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`).
//! The server never sees or stores a plaintext password. An unknown user and a
//! wrong password get the same error (28P01).

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use lambdadb_common::UserConfig;
use pgwire::api::auth::sasl::scram::{ScramSecret, gen_salted_password};
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::{PgWireError, PgWireResult};

/// Formats the verifier PostgreSQL would store for `password`.
pub fn make_verifier(password: &str, iterations: usize) -> String {
    let salt: [u8; 16] = rand::random();
    let salted = gen_salted_password(password, &salt, iterations);
    let ScramSecret::Verifier {
        stored_key,
        server_key,
        ..
    } = ScramSecret::verifier_from_salted_password(salt.to_vec(), salted, iterations)
    else {
        unreachable!("verifier_from_salted_password returns a verifier")
    };
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        B64.encode(salt),
        B64.encode(stored_key),
        B64.encode(server_key)
    )
}

/// Parses a verifier; `None` when it is malformed.
pub fn parse_verifier(v: &str) -> Option<ScramSecret> {
    let rest = v.strip_prefix("SCRAM-SHA-256$")?;
    let (iter_salt, keys) = rest.split_once('$')?;
    let (iters, salt) = iter_salt.split_once(':')?;
    let (stored, server) = keys.split_once(':')?;
    Some(ScramSecret::Verifier {
        salt: B64.decode(salt).ok()?,
        iterations: iters.parse().ok()?,
        stored_key: B64.decode(stored).ok()?,
        server_key: B64.decode(server).ok()?,
    })
}

/// The configured users, as pgwire's SCRAM implementation asks for them.
#[derive(Debug)]
pub struct ConfiguredUsers {
    /// The configured users, each with the SCRAM verifier the exchange checks against.
    pub users: Vec<UserConfig>,
}

#[async_trait]
impl AuthSource for ConfiguredUsers {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        Err(PgWireError::InvalidPassword(
            login.user().unwrap_or_default().to_owned(),
        ))
    }

    async fn get_scram_secret(&self, login: &LoginInfo) -> PgWireResult<(ScramSecret, Option<()>)> {
        let name = login.user().unwrap_or_default();
        let secret = self
            .users
            .iter()
            .find(|u| u.name == name)
            .and_then(|u| parse_verifier(&u.password));
        // An unknown user gets a decoy verifier with a salt stable per name, so
        // the exchange runs to the same proof failure as a wrong password: same
        // message, same steps, no way to tell which names exist.
        Ok((secret.unwrap_or_else(|| decoy(name)), None))
    }
}

fn decoy(name: &str) -> ScramSecret {
    use std::hash::{Hash, Hasher};
    let mut salt = Vec::with_capacity(16);
    for round in 0..2u8 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (round, name, "lambdadb-decoy").hash(&mut h);
        salt.extend_from_slice(&h.finish().to_be_bytes());
    }
    ScramSecret::Verifier {
        salt,
        iterations: 4096,
        stored_key: rand::random::<[u8; 32]>().to_vec(),
        server_key: rand::random::<[u8; 32]>().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_round_trip() {
        let v = make_verifier("secret", 4096);
        assert!(v.starts_with("SCRAM-SHA-256$4096:"));
        let Some(ScramSecret::Verifier {
            iterations,
            salt,
            stored_key,
            ..
        }) = parse_verifier(&v)
        else {
            panic!("unparsable {v}")
        };
        assert_eq!((iterations, salt.len(), stored_key.len()), (4096, 16, 32));
        assert!(parse_verifier("secret").is_none());
    }
}
