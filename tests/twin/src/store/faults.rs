//! Request counters for the report, and scenario fault injection ("throttle the Nth call").

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::ApiError;

/// Counts of API requests by verb (`get`, `list`, `watch`, `create`, `update`, `patch`,
/// `delete`) and resource (`pods`, `pods/eviction`, `deployments/scale`...).
#[derive(Debug, Default)]
pub struct RequestCounts {
    counts: Mutex<BTreeMap<(String, String), u64>>,
}

impl RequestCounts {
    pub fn record(&self, verb: &str, resource: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts
            .entry((verb.to_string(), resource.to_string()))
            .or_default() += 1;
    }

    /// How many requests of this verb and resource were served.
    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .get(&(verb.to_string(), resource.to_string()))
            .copied()
            .unwrap_or_default()
    }

    /// Every counter, keyed by (verb, resource).
    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// "Answer the calls of `verb` on `resource` with `code`, `times` times, after letting
/// `after` of them through." `verb` and `resource` as in [`RequestCounts`]; `"*"` matches any.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    pub verb: String,
    pub resource: String,
    pub code: u16,
    pub after: u32,
    pub times: u32,
    seen: u32,
    fired: u32,
}

impl FaultRule {
    /// Fails the next call once with `code` (429 and 500 are the useful ones).
    pub fn new(verb: &str, resource: &str, code: u16) -> Self {
        Self {
            verb: verb.to_string(),
            resource: resource.to_string(),
            code,
            after: 0,
            times: 1,
            seen: 0,
            fired: 0,
        }
    }

    /// Lets `n` matching calls through before failing.
    pub fn after(mut self, n: u32) -> Self {
        self.after = n;
        self
    }

    /// Fails `n` calls (then lets every later one through).
    pub fn times(mut self, n: u32) -> Self {
        self.times = n;
        self
    }

    /// How many calls this rule has failed so far.
    pub fn fired(&self) -> u32 {
        self.fired
    }

    fn matches(&self, verb: &str, resource: &str) -> bool {
        (self.verb == "*" || self.verb == verb)
            && (self.resource == "*" || self.resource == resource)
    }
}

/// The active fault rules. The HTTP layer calls [`Faults::check`] before serving a request.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

impl Faults {
    pub fn add(&self, rule: FaultRule) {
        self.rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(rule);
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The rules with their counters, for the report.
    pub fn rules(&self) -> Vec<FaultRule> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The error to answer this call with, if a rule fires for it.
    pub fn check(&self, verb: &str, resource: &str) -> Option<ApiError> {
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        for rule in rules.iter_mut().filter(|r| r.matches(verb, resource)) {
            rule.seen += 1;
            if rule.seen > rule.after && rule.fired < rule.times {
                rule.fired += 1;
                let message = format!("injected fault on {verb} {resource}");
                return Some(match rule.code {
                    429 => ApiError::too_many_requests(message)
                        .with_details(serde_json::json!({ "retryAfterSeconds": 1 })),
                    409 => ApiError::new(409, "Conflict", message),
                    404 => ApiError::new(404, "NotFound", message),
                    503 => ApiError::new(503, "ServiceUnavailable", message),
                    504 => ApiError::new(504, "Timeout", message),
                    code => ApiError::new(code, "InternalError", message),
                });
            }
        }
        None
    }
}
