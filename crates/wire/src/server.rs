//! The accept loop: one task and one session per connection.

use std::sync::Arc;

use lambdadb_query::{Engine, Session};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::handler::{Handler, Handlers};

/// Serves the Postgres protocol on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, engine: Arc<Engine>) -> std::io::Result<()> {
    info!(addr = %listener.local_addr()?, "serving the Postgres protocol");
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
        let handlers = Handlers(Arc::new(Handler::new(Session::new(engine.clone()))));
        tokio::spawn(async move {
            debug!(%peer, "connection");
            if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                debug!(%peer, "connection ended with an error: {e}");
            }
        });
    }
}
