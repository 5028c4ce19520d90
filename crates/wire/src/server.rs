//! The accept loop: one task per connection, and a session once it has logged in.

use std::sync::Arc;

use lambdadb_pgcompat::pgshared::PgShared;
use lambdadb_serving::Engine;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::cancel::CancelRegistry;
use crate::handler::{Handler, Handlers};
use crate::idle;
use crate::logins::PendingLogins;
use crate::slots::Slots;

fn duplicate(socket: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let std = socket.into_std()?;
    let watch = std.try_clone()?;
    Ok((TcpStream::from_std(std)?, watch))
}

/// Serves the Postgres protocol on `listener` until the task is dropped.
/// `pg` is the `pg_catalog` data every session shares.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    pg: Arc<PgShared>,
    tls: Option<pgwire::tokio::TlsAcceptor>,
) -> std::io::Result<()> {
    info!(addr = %listener.local_addr()?, "serving the Postgres protocol");
    let cancels = Arc::new(CancelRegistry::default());
    let slots = Slots::new(engine.config().max_connections);
    let logins = PendingLogins::new(engine.config().max_unauthenticated_connections);
    let login_timeout = engine.config().authentication_timeout;
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and similar: keep serving the others.
                warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        // Until login a connection is a socket, a buffer and a timer: the
        // session is built once the client has authenticated (handler.rs).
        // The connection limit is applied at startup (see slots.rs), so cancel
        // requests and port probes are never refused.
        let handler = Arc::new(Handler::new(
            engine.clone(),
            pg.clone(),
            cancels.clone(),
            slots.clone(),
        ));
        let tls = tls.clone();
        let logins = logins.clone();
        tokio::spawn(async move {
            debug!(%peer, "connection");
            // A second handle on the socket lets the idle watchdog close it while
            // pgwire's loop owns the first.
            let (socket, watch) = match duplicate(socket) {
                Ok(pair) => pair,
                Err(e) => {
                    warn!(%peer, "cannot set up the connection: {e}");
                    return;
                }
            };
            let watch = Arc::new(watch);
            handler.set_pending(logins.register(watch.clone()));
            let activity = handler.activity();
            let session = handler.login_session();
            tokio::select! {
                r = pgwire::tokio::process_socket(socket, tls, Handlers(handler)) => {
                    if let Err(e) = r {
                        debug!(%peer, "connection ended with an error: {e}");
                    }
                }
                why = idle::expired(activity.clone(), session, login_timeout) => {
                    match why {
                        idle::Expiry::Idle => info!(%peer, "closing a connection idle longer than idle_session_timeout"),
                        idle::Expiry::Authentication => info!(%peer, "closing a connection that did not log in within authentication_timeout"),
                    }
                    idle::terminate(&watch, &activity, why);
                }
            }
        });
    }
}
