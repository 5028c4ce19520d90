//! Named fault points in the commit protocols, for the fault-injection suite.
//!
//! Compiled in only with the `failpoints` feature (the test build `make test`
//! uses); in any other build [`hit`] is an empty inline function. With the
//! feature, the points to trigger come from `LAMBDADB_TEST_FAILPOINTS` (read
//! once) and from the file named by `LAMBDADB_TEST_FAILPOINTS_FILE` (read again
//! at every hit, so a test can switch a fault on and off while the server runs):
//! `name=action` entries separated by `;` or newlines, where the action is
//!
//! - `crash`: the process aborts at that point, as if killed (no destructor,
//!   no flush: what `kill -9` does at exactly that instant);
//! - `crash@N`: the same at the N-th hit of the point;
//! - `enospc`: the step fails with "No space left on device" (errno 28);
//! - `pause@N`: at the N-th hit the process stops itself (SIGSTOP) right
//!   there, as a process paused by the scheduler, a VM migration or a GC
//!   would; the test resumes it with SIGCONT (the writer-lease fencing test).
//!
//! Point names are `<protocol>.<step>`, listed in `docs/faults.md`.

/// Passes `name`: `Ok` unless a fault is configured for it (see the module doc).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) -> std::io::Result<()> {
    Ok(())
}

/// Passes `name`: `Ok` unless a fault is configured for it (see the module doc).
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) -> std::io::Result<()> {
    enabled::hit(name)
}

#[cfg(feature = "failpoints")]
mod enabled {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    fn hits() -> &'static Mutex<HashMap<String, u64>> {
        static HITS: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
        HITS.get_or_init(Default::default)
    }

    fn configured(name: &str) -> Option<String> {
        static FROM_ENV: OnceLock<String> = OnceLock::new();
        let env =
            FROM_ENV.get_or_init(|| std::env::var("LAMBDADB_TEST_FAILPOINTS").unwrap_or_default());
        let file = std::env::var("LAMBDADB_TEST_FAILPOINTS_FILE")
            .ok()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        [env.as_str(), file.as_str()]
            .into_iter()
            .flat_map(|text| text.split([';', '\n']))
            .filter_map(|entry| entry.trim().split_once('='))
            .find(|(n, _)| n.trim() == name)
            .map(|(_, action)| action.trim().to_string())
    }

    pub(super) fn hit(name: &str) -> std::io::Result<()> {
        let Some(action) = configured(name) else {
            return Ok(());
        };
        let count = {
            let mut hits = hits().lock().unwrap_or_else(|e| e.into_inner());
            let n = hits.entry(name.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        let (action, at) = match action.split_once('@') {
            Some((a, n)) => (a.to_string(), n.parse().unwrap_or(1)),
            None => (action, 1),
        };
        match action.as_str() {
            "crash" if count >= at => {
                eprintln!("failpoint {name}: crashing (hit {count})");
                std::process::abort();
            }
            "enospc" => Err(std::io::Error::from_raw_os_error(28)),
            "pause" if count == at => {
                eprintln!("failpoint {name}: pausing (hit {count}); resume with SIGCONT");
                // SAFETY: raise only sends a signal to this process.
                unsafe {
                    libc::raise(libc::SIGSTOP);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
