//! A leader-elected replica as the manager runs it: an elector plus the Widget controller, which
//! runs only while the replica leads.

use std::time::Duration;

use agility_core::leader::{LeaderElector, Leadership, LeaseTiming};
use agility_core::shutdown::CancellationToken;
use kube::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::widget::RunningController;

/// One replica.
pub struct Replica {
    /// Its election identity.
    pub identity: String,
    leadership: watch::Receiver<Leadership>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Replica {
    /// Starts a replica competing for Lease `namespace/lease`.
    pub fn start(
        client: &Client,
        namespace: &str,
        lease: &str,
        identity: &str,
        timing: LeaseTiming,
    ) -> Self {
        let elector = LeaderElector::new(client.clone(), namespace, lease, identity, timing)
            .unwrap_or_else(|e| panic!("elector: {e}"))
            .spawn();
        let leadership = elector.subscribe();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            elector,
            client.clone(),
            namespace.to_owned(),
            stop.clone(),
        ));
        Replica {
            identity: identity.to_owned(),
            leadership,
            stop,
            task: Some(task),
        }
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        self.leadership.borrow().is_leader()
    }

    /// Graceful stop: controller drained, lease released.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Crash: everything stops at once, the lease is not released.
    pub fn crash(self) {
        drop(self);
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run(
    elector: agility_core::leader::ElectorHandle,
    client: Client,
    namespace: String,
    stop: CancellationToken,
) {
    let mut leadership = elector.subscribe();
    loop {
        if leadership.borrow_and_update().is_leader() {
            break;
        }
        tokio::select! {
            () = stop.cancelled() => {
                let _ = elector.stop_and_release().await;
                return;
            }
            changed = leadership.changed() => if changed.is_err() { return },
        }
    }
    let controller = RunningController::start(&client, &namespace, Duration::from_secs(60));
    tokio::select! {
        () = stop.cancelled() => {
            let _ = controller.stop().await;
            let _ = elector.stop_and_release().await;
        }
        () = async {
            while leadership.borrow_and_update().is_leader() {
                if leadership.changed().await.is_err() { return; }
            }
        } => {
            // Lost the lease: stop reconciling at once.
            controller.abort();
        }
    }
}
