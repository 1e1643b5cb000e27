//! Fault injection and request counters for the EKS control plane.

use std::collections::{BTreeMap, HashMap, HashSet};

use std::sync::Mutex;

use super::error::EksError;
use super::model::Issue;
use crate::store::{InjectedLog, function_matches, seeded_draw};

/// How an injected call failure answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallFault {
    /// 429 `ThrottlingException`, which the SDK retries with backoff.
    Throttle,
    /// 500 `ServerException`.
    ServerError,
    /// 503 `ServiceUnavailableException`.
    Unavailable,
}

impl CallFault {
    /// The fault a scenario's HTTP code asks for (429 throttles).
    pub fn from_code(code: u16) -> Option<Self> {
        match code {
            429 => Some(Self::Throttle),
            500 => Some(Self::ServerError),
            503 => Some(Self::Unavailable),
            _ => None,
        }
    }

    fn error(self) -> EksError {
        match self {
            Self::Throttle => EksError::throttling("Rate exceeded"),
            Self::ServerError => EksError::server("An internal error occurred (injected)"),
            Self::Unavailable => {
                EksError::unavailable("The service is unavailable. Please try again later.")
            }
        }
    }
}

/// "Fail `times` calls of `operation` (`*`: any) with `fault`, after letting `after`
/// through", optionally only the calls of one ngm function; or, with `rate`, each call with
/// that probability, drawn from `seed`.
#[derive(Clone, Debug, PartialEq)]
pub struct CallRule {
    pub operation: String,
    pub fault: CallFault,
    pub times: u32,
    pub after: u32,
    pub function: Option<String>,
    /// Each matching call fails with this probability, with one of these faults.
    pub rate: Option<(f64, u64, Vec<CallFault>)>,
    /// Names the fault in the injected-answers log.
    pub label: String,
    seen: u32,
    fired: u32,
    per_call: BTreeMap<(String, String), u64>,
}

impl CallRule {
    pub fn new(operation: &str, fault: CallFault, times: u32) -> Self {
        Self {
            operation: operation.to_string(),
            fault,
            times,
            after: 0,
            function: None,
            rate: None,
            label: format!("{fault:?} on eks:{operation}"),
            seen: 0,
            fired: 0,
            per_call: BTreeMap::new(),
        }
    }

    /// Every call fails with probability `rate`, with one of `faults`.
    pub fn rate(rate: f64, seed: u64, faults: Vec<CallFault>) -> Self {
        let first = faults.first().copied().unwrap_or(CallFault::ServerError);
        Self {
            rate: Some((rate, seed, faults)),
            label: format!("faultRate {rate}"),
            ..Self::new("*", first, 0)
        }
    }

    pub fn after(mut self, n: u32) -> Self {
        self.after = n;
        self
    }

    pub fn function(mut self, f: Option<&str>) -> Self {
        self.function = f.map(str::to_string);
        self
    }

    pub fn labelled(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    fn fire(&mut self, operation: &str, caller: &str) -> Option<CallFault> {
        if !(self.operation == "*" || self.operation == operation)
            || !function_matches(self.function.as_deref(), caller)
        {
            return None;
        }
        self.seen += 1;
        if let Some((rate, seed, faults)) = &self.rate {
            let n = self
                .per_call
                .entry((caller.to_string(), operation.to_string()))
                .or_default();
            *n += 1;
            let (draw, pick) = seeded_draw(*seed, &[caller, operation], *n);
            if draw < *rate && !faults.is_empty() {
                self.fired += 1;
                return Some(faults[(pick % faults.len() as u64) as usize]);
            }
            return None;
        }
        if self.seen > self.after && self.fired < self.times {
            self.fired += 1;
            return Some(self.fault);
        }
        None
    }
}

/// Faults to inject, shared by the HTTP handlers and the background reconciler.
#[derive(Debug, Default)]
pub struct Faults {
    inner: Mutex<FaultState>,
    injected: InjectedLog,
}

#[derive(Debug, Default)]
struct FaultState {
    calls: Vec<CallRule>,
    fail_create: HashSet<String>,
    degraded: HashMap<String, Issue>,
    never_ready: HashSet<String>,
}

impl Faults {
    fn state(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Make the next `times` calls of `operation` (an EKS operation name such as
    /// `DescribeNodegroup`) fail with `fault`.
    pub fn fail_call(&self, operation: &str, fault: CallFault, times: u32) {
        self.add_rule(CallRule::new(operation, fault, times));
    }

    /// Adds a call rule (rules are checked in order; the first that fires answers).
    pub fn add_rule(&self, rule: CallRule) {
        self.state().calls.push(rule);
    }

    /// Every answer given because of an injected call fault.
    pub fn injected(&self) -> &InjectedLog {
        &self.injected
    }

    /// A node group of this name ends in `CREATE_FAILED` (with a `NodeCreationFailure` issue)
    /// instead of `ACTIVE`.
    pub fn fail_create(&self, nodegroup: &str) {
        self.state().fail_create.insert(nodegroup.to_string());
    }

    /// The group turns `DEGRADED` with this health issue until [`Faults::heal`].
    pub fn degrade(&self, nodegroup: &str, code: &str, message: &str) {
        self.state().degraded.insert(
            nodegroup.to_string(),
            Issue {
                code: code.to_string(),
                message: message.to_string(),
                resource_ids: Vec::new(),
            },
        );
    }

    pub fn heal(&self, nodegroup: &str) {
        self.state().degraded.remove(nodegroup);
    }

    /// Nodes of this group (managed node group name, or Auto Scaling group name for a
    /// self-managed one) register but never report Ready.
    pub fn never_ready(&self, group: &str) {
        self.state().never_ready.insert(group.to_string());
    }

    /// The error to answer this call of `caller` with, if a rule fires; logged as injected.
    pub(crate) fn take_call_fault(&self, operation: &str, caller: &str) -> Option<EksError> {
        let mut st = self.state();
        for rule in st.calls.iter_mut() {
            if let Some(fault) = rule.fire(operation, caller) {
                let e = fault.error();
                self.injected.record(
                    &rule.label,
                    "aws",
                    &format!("eks:{operation}"),
                    caller,
                    e.status,
                );
                return Some(e);
            }
        }
        None
    }

    pub(crate) fn creation_fails(&self, nodegroup: &str) -> bool {
        self.state().fail_create.contains(nodegroup)
    }

    pub(crate) fn degraded(&self, nodegroup: &str) -> Option<Issue> {
        self.state().degraded.get(nodegroup).cloned()
    }

    pub(crate) fn is_never_ready(&self, group: &str) -> bool {
        self.state().never_ready.contains(group)
    }
}

/// Requests received, by EKS operation name (faulted ones included), and by caller.
#[derive(Debug, Default)]
pub struct Counters {
    inner: Mutex<BTreeMap<String, u64>>,
    by_caller: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
}

impl Counters {
    pub(crate) fn hit(&self, operation: &str, caller: &str) {
        *self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(operation.to_string())
            .or_default() += 1;
        *self
            .by_caller
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(caller.to_string())
            .or_default()
            .entry(format!("eks:{operation}"))
            .or_default() += 1;
    }

    /// Requests by caller (the AWS SDK app id, `app/ngm-local-<function>`), then by call
    /// (`eks:<Operation>`).
    pub fn by_caller(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        self.by_caller
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A copy of the counts, by operation.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn get(&self, operation: &str) -> u64 {
        self.snapshot().get(operation).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: &Faults, calls: &[(&str, &str)]) -> Vec<Option<u16>> {
        calls
            .iter()
            .map(|(op, caller)| f.take_call_fault(op, caller).map(|e| e.status))
            .collect()
    }

    #[test]
    fn a_call_rule_counts_after_over_its_own_functions_calls_and_logs_each_answer() {
        let f = Faults::default();
        f.add_rule(
            CallRule::new("DescribeNodegroup", CallFault::Unavailable, 1)
                .after(1)
                .function(Some("check-group-ready"))
                .labelled("faults[2] fail"),
        );
        let ready = "app/ngm-local-check-group-ready";
        let other = "app/ngm-local-rollback";
        let got = run(
            &f,
            &[
                ("DescribeNodegroup", ready),
                ("DescribeNodegroup", other),
                ("ListNodegroups", ready),
                ("DescribeNodegroup", ready),
                ("DescribeNodegroup", ready),
            ],
        );
        assert_eq!(got, [None, None, None, Some(503), None]);
        let log = f.injected().snapshot();
        assert_eq!(log.len(), 1);
        assert_eq!(
            (
                log[0].fault.as_str(),
                log[0].call.as_str(),
                log[0].caller.as_str()
            ),
            ("faults[2] fail", "eks:DescribeNodegroup", ready)
        );
    }

    #[test]
    fn a_rate_rule_is_deterministic_from_its_seed_and_uses_every_fault() {
        let run_seed = |seed| {
            let f = Faults::default();
            f.add_rule(CallRule::rate(
                0.2,
                seed,
                vec![
                    CallFault::Throttle,
                    CallFault::ServerError,
                    CallFault::Unavailable,
                ],
            ));
            (0..1000)
                .map(|_| {
                    f.take_call_fault("DescribeNodegroup", "app/ngm-local-retire")
                        .map(|e| e.status)
                })
                .collect::<Vec<_>>()
        };
        let a = run_seed(7);
        assert_eq!(a, run_seed(7));
        let failed = a.iter().flatten().count();
        assert!((130..=270).contains(&failed), "{failed} of 1000 at 0.2");
        for code in [429, 500, 503] {
            assert!(a.contains(&Some(code)), "{code}");
        }
    }
}
