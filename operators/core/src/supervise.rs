//! One long-running task per custom object (e.g. a failover supervisor per database instance):
//! started on the first reconcile, re-configured through a watch channel when the desired config
//! changes, stopped when the object goes. The task publishes a snapshot the reconcile reads for
//! status.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::watcher::{self, watcher};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::labels;

/// A cache of the data pods one controller runs (`component` pods it manages, in every
/// namespace), for supervisors that probe them. Filled in the background until `stop`.
pub fn data_pods(
    client: &kube::Client,
    controller: &str,
    component: &str,
    stop: CancellationToken,
) -> Store<Pod> {
    let selector = format!(
        "{}={},{}={},{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE,
        labels::CONTROLLER,
        controller,
        labels::COMPONENT,
        component
    );
    let (pods, writer) = reflector::store::<Pod>();
    let events = reflector(
        writer,
        watcher(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default().labels(&selector),
        ),
    )
    .default_backoff()
    .applied_objects();
    tokio::spawn(async move {
        let drain = events.for_each(|_| futures::future::ready(()));
        tokio::select! {
            () = drain => {}
            () = stop.cancelled() => {}
        }
    });
    pods
}

/// `(namespace, name)`.
pub type TaskKey = (String, String);

/// What a started task gets.
pub struct TaskHandle<C, S> {
    /// The object.
    pub key: TaskKey,
    /// The current config (changes arrive here).
    pub config: watch::Receiver<C>,
    /// Where the task publishes what it saw.
    pub snapshot: Arc<Mutex<S>>,
    /// Cancelled when the object is forgotten or the process shuts down.
    pub stop: CancellationToken,
}

struct Entry<C, S> {
    config: watch::Sender<C>,
    snapshot: Arc<Mutex<S>>,
    stop: CancellationToken,
}

/// The tasks of one controller.
pub struct TaskRegistry<C, S> {
    shutdown: CancellationToken,
    entries: Mutex<HashMap<TaskKey, Entry<C, S>>>,
}

impl<C: Clone + PartialEq, S: Clone + Default> TaskRegistry<C, S> {
    /// An empty registry whose tasks stop with `shutdown`.
    pub fn new(shutdown: CancellationToken) -> Self {
        TaskRegistry {
            shutdown,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TaskKey, Entry<C, S>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `config` to the object's task, or calls `start` with a new handle when there is none.
    /// Returns whether a task was started.
    pub fn ensure(
        &self,
        namespace: &str,
        name: &str,
        config: C,
        start: impl FnOnce(TaskHandle<C, S>),
    ) -> bool {
        let key = (namespace.to_owned(), name.to_owned());
        let mut entries = self.lock();
        if let Some(e) = entries.get(&key) {
            e.config.send_if_modified(|c| {
                let changed = *c != config;
                if changed {
                    *c = config.clone();
                }
                changed
            });
            return false;
        }
        let (tx, rx) = watch::channel(config);
        let snapshot = Arc::new(Mutex::new(S::default()));
        let stop = self.shutdown.child_token();
        start(TaskHandle {
            key: key.clone(),
            config: rx,
            snapshot: snapshot.clone(),
            stop: stop.clone(),
        });
        entries.insert(
            key,
            Entry {
                config: tx,
                snapshot,
                stop,
            },
        );
        true
    }

    /// Stops the object's task.
    pub fn forget(&self, namespace: &str, name: &str) {
        if let Some(e) = self.lock().remove(&(namespace.to_owned(), name.to_owned())) {
            e.stop.cancel();
        }
    }

    /// The task's last snapshot.
    pub fn snapshot(&self, namespace: &str, name: &str) -> Option<S> {
        self.lock()
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|e| {
                e.snapshot
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_once_reconfigures_and_stops() {
        let reg: TaskRegistry<u32, u32> = TaskRegistry::new(CancellationToken::new());
        let mut handle = None;
        assert!(reg.ensure("ns", "a", 1, |h| handle = Some(h)));
        let mut h = handle.unwrap();
        assert!(!reg.ensure("ns", "a", 2, |_| panic!("started twice")));
        h.config.changed().await.unwrap();
        assert_eq!(*h.config.borrow(), 2);
        *h.snapshot.lock().unwrap() = 7;
        assert_eq!(reg.snapshot("ns", "a"), Some(7));
        reg.forget("ns", "a");
        assert!(h.stop.is_cancelled());
        assert_eq!(reg.snapshot("ns", "a"), None);
    }
}
