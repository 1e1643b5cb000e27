//! Serves the Kubernetes API (alone, or merged with the EKS API by [`crate::twin`]) on
//! 127.0.0.1 and shuts it down gracefully.

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{ApiOptions, router_with};
use crate::store::Store;

/// A running server. Dropping it leaves the server running; call [`ServerHandle::shutdown`]
/// to stop it and wait for open connections to finish.
#[derive(Debug)]
pub struct ServerHandle {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl ServerHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits for the server task. Open watches end as their
    /// streams are dropped.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
        match self.task.await {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// Waits until the server stops (it runs until shut down).
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Binds `addr` (port 0 picks a free port) and serves the store's API.
/// Returns the URL (`http://127.0.0.1:PORT`) and the handle.
pub async fn serve(store: Store, addr: SocketAddr) -> std::io::Result<(String, ServerHandle)> {
    serve_with(store, addr, ApiOptions::default()).await
}

/// [`serve`] with explicit API options.
pub async fn serve_with(
    store: Store,
    addr: SocketAddr,
    options: ApiOptions,
) -> std::io::Result<(String, ServerHandle)> {
    let listener = TcpListener::bind(addr).await?;
    let sup = store.supervisor().clone();
    let app = crate::supervisor::guard_router(router_with(store, options), sup, "api server");
    let handle = serve_app(listener, app)?;
    Ok((handle.url(), handle))
}

/// Serves any router on a bound listener: the whole twin merges the Kubernetes API with the
/// EKS REST API and serves both on one port.
pub fn serve_app(listener: TcpListener, app: Router) -> std::io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(ServerHandle {
        addr,
        stop: Some(stop),
        task,
    })
}

/// Serves on an ephemeral port of 127.0.0.1.
pub async fn serve_local(store: Store) -> std::io::Result<(String, ServerHandle)> {
    serve(store, SocketAddr::from(([127, 0, 0, 1], 0))).await
}
