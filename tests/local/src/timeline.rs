//! The execution's timeline as it happens: each state entered, with simulated and wall time,
//! and each retry, catch and operator answer.

use std::time::Instant;

use chrono::{DateTime, Utc};
use ngm_twin::clock::Clock;

use crate::interp::StateEvent;

pub struct Timeline {
    clock: Clock,
    started_sim: DateTime<Utc>,
    started_wall: Instant,
    print: bool,
    events: Vec<StateEvent>,
    /// Consecutive polls of one loop are folded into one line.
    last_task: Option<(String, u32)>,
}

impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Timeline({} events)", self.events.len())
    }
}

impl Timeline {
    pub fn new(clock: Clock, started_sim: DateTime<Utc>, print: bool) -> Self {
        if print {
            println!("  simulated     wall  state");
        }
        Self {
            clock,
            started_sim,
            started_wall: Instant::now(),
            print,
            events: Vec::new(),
            last_task: None,
        }
    }

    fn stamp(&self) -> String {
        let sim = (self.clock.now() - self.started_sim).num_seconds().max(0);
        format!(
            "  {:>3}:{:02}:{:02} {:>7.1}s",
            sim / 3600,
            (sim / 60) % 60,
            sim % 60,
            self.started_wall.elapsed().as_secs_f64()
        )
    }

    fn say(&self, what: &str) {
        if self.print {
            println!("{}  {what}", self.stamp());
        }
    }

    pub fn note(&mut self, what: &str) {
        self.say(what);
    }

    pub fn record(&mut self, e: StateEvent) {
        let state = e.state.clone().unwrap_or_default();
        match (e.kind.as_str(), e.state_type.as_deref()) {
            ("StateEntered", Some("Task")) => {
                let repeat = match &mut self.last_task {
                    Some((s, n)) if *s == state => {
                        *n += 1;
                        Some(*n)
                    }
                    _ => None,
                };
                match repeat {
                    Some(n) => self.say(&format!("{state} (poll {n})")),
                    None => {
                        self.last_task = Some((state.clone(), 1));
                        self.say(&state);
                    }
                }
            }
            ("StateEntered", Some("Succeed" | "Fail")) => self.say(&state),
            ("StateRetried", _) => self.say(&format!(
                "{state}: retry {} after a retryable error",
                e.attempt.unwrap_or_default() + 1
            )),
            ("StateFailed", _) => self.say(&format!(
                "{state} failed: {} ({})",
                e.error.as_deref().unwrap_or("?"),
                e.cause.as_deref().unwrap_or("")
            )),
            ("StateCaught", _) => self.say(&format!("{state}: error caught, rolling back")),
            _ => {}
        }
        self.events.push(e);
    }

    pub fn events(&self) -> &[StateEvent] {
        &self.events
    }
}
