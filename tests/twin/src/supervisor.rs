//! Every task of the twin runs supervised: a panic in any of them (the controllers, the EKS
//! reconciler and its provisioning and drains, the load balancers and probe, the HTTP
//! handlers, timed faults) is recorded with the task's name and message, and
//! [`Supervisor::fatal`] resolves at once, so whoever runs the twin ends the run with that
//! error instead of waiting on a cluster whose controllers silently died.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The first task that panicked: its name and its panic message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskPanic {
    pub task: String,
    pub message: String,
}

/// Records task panics; cheap to clone (all clones share one record).
#[derive(Clone, Debug)]
pub struct Supervisor {
    tx: watch::Sender<Option<TaskPanic>>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self {
            tx: watch::Sender::new(None),
        }
    }
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

impl Supervisor {
    /// Records a panic of `task` (only the first one is kept: it is the cause, later ones
    /// usually follow from it).
    pub fn report(&self, task: &str, message: String) {
        tracing::error!(task, %message, "twin task panicked");
        self.tx.send_if_modified(|slot| {
            if slot.is_some() {
                return false;
            }
            *slot = Some(TaskPanic {
                task: task.to_string(),
                message,
            });
            true
        });
    }

    /// The first panic, if any task panicked.
    pub fn panicked(&self) -> Option<TaskPanic> {
        self.tx.borrow().clone()
    }

    /// Resolves when a task has panicked (at once if one already has).
    pub async fn fatal(&self) -> TaskPanic {
        let mut rx = self.tx.subscribe();
        loop {
            if let Some(p) = rx.borrow_and_update().clone() {
                return p;
            }
            // The sender lives in `self`, so the channel cannot close while we wait.
            if rx.changed().await.is_err() {
                return TaskPanic {
                    task: "supervisor".into(),
                    message: "the supervisor was dropped".into(),
                };
            }
        }
    }

    /// Runs `fut` as a tokio task named `task`. A panic is recorded, then resumed, so the
    /// returned handle still reports it (`JoinError::is_panic`).
    pub fn spawn<F>(&self, task: impl Into<String>, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = task.into();
        let sup = self.clone();
        tokio::spawn(async move {
            match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(v) => v,
                Err(payload) => {
                    sup.report(&task, panic_message(payload.as_ref()));
                    std::panic::resume_unwind(payload)
                }
            }
        })
    }

    /// Runs `fut` (one request's handler) and turns a panic into `Err(message)` after
    /// recording it under `task`.
    pub async fn guard<F: Future>(&self, task: &str, fut: F) -> Result<F::Output, String> {
        match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(v) => Ok(v),
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                self.report(task, message.clone());
                Err(message)
            }
        }
    }
}

/// Wraps every handler of `router` so that a panicking request is recorded under `task`
/// (and answered 500) instead of silently killing its connection.
pub fn guard_router(router: axum::Router, sup: Supervisor, task: &'static str) -> axum::Router {
    use axum::response::IntoResponse;
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let sup = sup.clone();
            async move {
                match sup.guard(task, next.run(req)).await {
                    Ok(resp) => resp,
                    Err(message) => (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        format!("the twin panicked: {message}"),
                    )
                        .into_response(),
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_named_with_its_message_and_only_the_first_is_kept() {
        let sup = Supervisor::default();
        assert_eq!(sup.panicked(), None);
        let h = sup.spawn("controllers", async { panic!("sort order violated") });
        let err = h.await.expect_err("the task panicked");
        assert!(err.is_panic(), "the handle still sees the panic");
        let p = sup.fatal().await;
        assert_eq!(p.task, "controllers");
        assert_eq!(p.message, "sort order violated");
        let later = sup.spawn("probe", async { panic!("{}", String::from("second")) });
        let _ = later.await;
        assert_eq!(sup.panicked().map(|p| p.task), Some("controllers".into()));
    }

    #[tokio::test]
    async fn a_task_that_ends_normally_is_not_fatal() {
        let sup = Supervisor::default();
        assert_eq!(sup.spawn("ok", async { 7 }).await.ok(), Some(7));
        assert_eq!(sup.panicked(), None);
        assert_eq!(
            sup.fatal().now_or_never(),
            None,
            "fatal() must stay pending without a panic"
        );
    }
}
