//! Process shutdown: the first SIGTERM or SIGINT cancels a token that every part of the operator
//! watches (controllers drain in-flight reconciles, the HTTP server stops, the leader releases).

use tokio::signal::unix::{SignalKind, signal};
use tracing::info;

/// Re-exported so products and the manager share one token type without a tokio-util dependency.
pub use tokio_util::sync::CancellationToken;

/// Returns a token cancelled on the first SIGTERM/SIGINT. Must be called inside a Tokio runtime.
pub fn on_signal() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let trigger = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        info!(signal = name, "shutting down");
        trigger.cancel();
    });
    Ok(token)
}
