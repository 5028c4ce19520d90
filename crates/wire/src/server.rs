//! The accept loop: one task and one session per connection.

use std::sync::Arc;

use lambdadb_serving::Engine;

use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::cancel::CancelRegistry;
use crate::handler::{Handler, Handlers};
use crate::idle;
use crate::session::Session;
use crate::slots::Slots;

fn duplicate(socket: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let std = socket.into_std()?;
    let watch = std.try_clone()?;
    Ok((TcpStream::from_std(std)?, watch))
}

/// Serves the Postgres protocol on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    tls: Option<pgwire::tokio::TlsAcceptor>,
) -> std::io::Result<()> {
    info!(addr = %listener.local_addr()?, "serving the Postgres protocol");
    let cancels = Arc::new(CancelRegistry::default());
    let slots = Slots::new(engine.config().max_connections);
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
        // The connection limit is applied at startup (see slots.rs), so cancel
        // requests and port probes are never refused.
        let handlers = Handlers(Arc::new(Handler::new(
            Session::new(engine.clone()),
            cancels.clone(),
            slots.clone(),
        )));
        let tls = tls.clone();
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
            let activity = handlers.0.activity();
            let vars = handlers.0.session().vars().clone();
            let login = handlers
                .0
                .session()
                .engine()
                .config()
                .authentication_timeout;
            tokio::select! {
                r = pgwire::tokio::process_socket(socket, tls, handlers) => {
                    if let Err(e) = r {
                        debug!(%peer, "connection ended with an error: {e}");
                    }
                }
                why = idle::expired(activity.clone(), vars, login) => {
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
