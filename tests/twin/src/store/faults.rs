//! Request counters for the report (by call, and by caller), scenario fault injection
//! ("throttle the Nth call", "fail 5% of the calls"), and the log of every answer the twin
//! gave because of an injected fault.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::ApiError;

/// The caller of a request that names none (no `User-Agent`).
pub const UNKNOWN_CALLER: &str = "unknown";

/// The caller a Kubernetes request names in its `User-Agent`: the first word
/// (`ngm/check-surge`, `kubectl/v1.32.0`, `kube-rs/...`), or [`UNKNOWN_CALLER`].
pub fn kubernetes_caller(user_agent: Option<&str>) -> String {
    user_agent
        .and_then(|ua| ua.split_whitespace().next())
        .filter(|w| !w.is_empty())
        .unwrap_or(UNKNOWN_CALLER)
        .to_string()
}

/// The ngm function a caller names: `ngm/<function>` (a Kubernetes `User-Agent`) or
/// `app/ngm-local-<function>` (the AWS SDK app id the local runner sets).
pub fn caller_function(caller: &str) -> Option<&str> {
    caller
        .strip_prefix("ngm/")
        .or_else(|| caller.strip_prefix("app/ngm-local-"))
        .or_else(|| caller.strip_prefix("ngm-local-"))
        .filter(|f| !f.is_empty())
}

/// Whether a fault limited to `function` applies to a call from `caller`.
pub fn function_matches(function: Option<&str>, caller: &str) -> bool {
    function.is_none_or(|f| caller_function(caller) == Some(f))
}

/// Counts of API requests by verb (`get`, `list`, `watch`, `create`, `update`, `patch`,
/// `delete`) and resource (`pods`, `pods/eviction`, `deployments/scale`...), and by caller.
#[derive(Debug, Default)]
pub struct RequestCounts {
    counts: Mutex<BTreeMap<(String, String), u64>>,
    by_caller: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
    /// Objects returned by get and list, by caller.
    objects_read: Mutex<BTreeMap<String, u64>>,
}

impl RequestCounts {
    /// Counts a request of an unknown caller.
    pub fn record(&self, verb: &str, resource: &str) {
        self.record_from(UNKNOWN_CALLER, verb, resource);
    }

    /// Counts a request of `caller` (see [`kubernetes_caller`]).
    pub fn record_from(&self, caller: &str, verb: &str, resource: &str) {
        {
            let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            *counts
                .entry((verb.to_string(), resource.to_string()))
                .or_default() += 1;
        }
        let mut by = self.by_caller.lock().unwrap_or_else(|e| e.into_inner());
        *by.entry(caller.to_string())
            .or_default()
            .entry(format!("{verb} {resource}"))
            .or_default() += 1;
    }

    /// Counts `n` objects returned to `caller` by a get or a list.
    pub fn record_read(&self, caller: &str, n: u64) {
        let mut read = self.objects_read.lock().unwrap_or_else(|e| e.into_inner());
        *read.entry(caller.to_string()).or_default() += n;
    }

    /// Objects returned by get and list, by caller.
    pub fn objects_read(&self) -> BTreeMap<String, u64> {
        self.objects_read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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

    /// Requests by caller, then by call (`"<verb> <resource>"`, as fault calls name them).
    pub fn by_caller(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        self.by_caller
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// One line of the injected-answers log: how many answers a fault gave to one caller's calls
/// of one kind, with one code.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectedCount {
    /// Which fault: `faults[<index in the scenario>] <kind>`, or the rule's own label.
    pub fault: String,
    /// `kubernetes` or `aws`.
    pub api: String,
    /// The call as fault rules name it (`create pods/eviction`, `eks:DescribeNodegroup`).
    pub call: String,
    pub caller: String,
    /// The HTTP status answered.
    pub code: u16,
    pub count: u64,
}

/// (fault, API, call, caller, code) of injected answers.
type InjectedKey = (String, String, String, String, u16);

/// Every answer given because of an injected fault, grouped.
#[derive(Debug, Default)]
pub struct InjectedLog {
    counts: Mutex<BTreeMap<InjectedKey, u64>>,
}

impl InjectedLog {
    pub fn record(&self, fault: &str, api: &str, call: &str, caller: &str, code: u16) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((
                fault.to_string(),
                api.to_string(),
                call.to_string(),
                caller.to_string(),
                code,
            ))
            .or_default() += 1;
    }

    pub fn snapshot(&self) -> Vec<InjectedCount> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((fault, api, call, caller, code), count)| InjectedCount {
                fault: fault.clone(),
                api: api.clone(),
                call: call.clone(),
                caller: caller.clone(),
                code: *code,
                count: *count,
            })
            .collect()
    }

    pub fn total(&self) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }
}

/// A uniform draw in [0, 1) and a second word, from a seed and the identity of one call
/// (splitmix64 over FNV-1a): the same call of the same run always draws the same.
pub fn seeded_draw(seed: u64, parts: &[&str], n: u64) -> (f64, u64) {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    let mut next = h ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut mix = || {
        next = next.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let a = mix();
    let b = mix();
    ((a >> 11) as f64 / (1u64 << 53) as f64, b)
}

/// "Answer the calls of `verb` on `resource` with `code`, `times` times, after letting
/// `after` of them through" (or, with [`FaultRule::rate`], a seeded share of every call).
/// `verb` and `resource` as in [`RequestCounts`]; `"*"` matches any. `function` limits it to
/// one ngm function's calls (`User-Agent: ngm/<function>`).
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    pub verb: String,
    pub resource: String,
    pub code: u16,
    pub after: u32,
    pub times: u32,
    pub function: Option<String>,
    /// Names the fault in the injected-answers log (`faults[3] throttle`).
    pub label: String,
    rate: Option<(f64, u64, Vec<u16>)>,
    seen: u32,
    fired: u32,
    /// Calls seen per (caller, call), for rate rules.
    per_call: BTreeMap<(String, String), u64>,
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
            function: None,
            label: format!("{code} on {verb} {resource}"),
            rate: None,
            seen: 0,
            fired: 0,
            per_call: BTreeMap::new(),
        }
    }

    /// Fails every call with probability `rate` (0..=1), with one of `codes`, drawn
    /// deterministically from `seed` and the call's caller, kind and ordinal.
    pub fn rate(rate: f64, seed: u64, codes: &[u16]) -> Self {
        let codes = if codes.is_empty() {
            vec![500]
        } else {
            codes.to_vec()
        };
        Self {
            label: format!("faultRate {rate}"),
            rate: Some((rate, seed, codes)),
            ..Self::new("*", "*", 500)
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

    /// Only calls of this ngm function.
    pub fn function(mut self, f: Option<&str>) -> Self {
        self.function = f.map(str::to_string);
        self
    }

    /// Names the rule in the injected-answers log.
    pub fn labelled(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// How many calls this rule has failed so far.
    pub fn fired(&self) -> u32 {
        self.fired
    }

    fn matches(&self, verb: &str, resource: &str, caller: &str) -> bool {
        (self.verb == "*" || self.verb == verb)
            && (self.resource == "*" || self.resource == resource)
            && function_matches(self.function.as_deref(), caller)
    }

    /// The code to answer this (matching) call with, if the rule fires for it.
    fn fire(&mut self, verb: &str, resource: &str, caller: &str) -> Option<u16> {
        self.seen += 1;
        if let Some((rate, seed, codes)) = &self.rate {
            let call = format!("{verb} {resource}");
            let n = self
                .per_call
                .entry((caller.to_string(), call.clone()))
                .or_default();
            *n += 1;
            let (draw, pick) = seeded_draw(*seed, &[caller, &call], *n);
            if draw < *rate {
                self.fired += 1;
                return Some(codes[(pick % codes.len() as u64) as usize]);
            }
            return None;
        }
        if self.seen > self.after && self.fired < self.times {
            self.fired += 1;
            return Some(self.code);
        }
        None
    }
}

/// How the twin answers an injected Kubernetes fault.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultAnswer {
    /// 429 as the API server's max-in-flight and priority-and-fairness filters answer it:
    /// a plain-text body and `Retry-After: 1` (k8s.io/apiserver
    /// pkg/server/filters/maxinflight.go `tooManyRequests`), not a `Status`.
    TooManyRequests,
    /// A `Status` error body, with `Retry-After` seconds when the API server sends one.
    Status {
        error: ApiError,
        retry_after: Option<u32>,
    },
}

impl FaultAnswer {
    /// The body the max-in-flight filter writes (Go's `http.Error` adds the newline).
    pub const TOO_MANY_REQUESTS: &'static str = "Too many requests, please try again later.\n";

    /// The answer the API server gives with this code.
    pub fn for_code(code: u16, verb: &str, resource: &str) -> Self {
        let what = format!("injected fault on {verb} {resource}");
        let status = |error: ApiError| Self::Status {
            error,
            retry_after: None,
        };
        match code {
            429 => Self::TooManyRequests,
            // `apierrors.NewInternalError`: "Internal error occurred: <err>", the error
            // repeated as the one cause.
            500 => status(
                ApiError::new(
                    500,
                    "InternalError",
                    format!("Internal error occurred: {what}"),
                )
                .with_details(serde_json::json!({ "causes": [{ "message": what }] })),
            ),
            // The API server's 503: `NewServiceUnavailable("apiserver is shutting down")` with
            // `Retry-After: 1`, as pkg/server/filters/waitgroup.go answers while it shuts down.
            503 => Self::Status {
                error: ApiError::new(503, "ServiceUnavailable", "apiserver is shutting down"),
                retry_after: Some(1),
            },
            // The timeout filter (filters/timeout.go, `NewTimeoutError`).
            504 => status(
                ApiError::new(
                    504,
                    "Timeout",
                    "Timeout: request did not complete within the allotted timeout",
                )
                .with_details(serde_json::json!({ "retryAfterSeconds": 0 })),
            ),
            409 => status(ApiError::new(409, "Conflict", what)),
            404 => status(ApiError::new(404, "NotFound", what)),
            code => status(ApiError::new(code, "InternalError", what)),
        }
    }

    pub fn code(&self) -> u16 {
        match self {
            Self::TooManyRequests => 429,
            Self::Status { error, .. } => error.code,
        }
    }
}

/// The active fault rules. The HTTP layer calls [`Faults::check`] before serving a request.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    injected: InjectedLog,
    /// Namespaces a fault deleted: their `NamespaceTerminating` refusals count as injected.
    deleted_namespaces: Mutex<BTreeSet<String>>,
    /// Deployments (`namespace/name`) whose pod template a `badRollout` fault changed.
    changed_templates: Mutex<BTreeSet<String>>,
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

    /// Every answer given because of an injected fault (Kubernetes side).
    pub fn injected(&self) -> &InjectedLog {
        &self.injected
    }

    /// Marks a namespace as deleted by a fault.
    pub fn namespace_deleted_by_fault(&self, ns: &str) {
        self.deleted_namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ns.to_string());
    }

    /// Marks a Deployment's pod template as changed by a fault.
    pub fn template_changed_by_fault(&self, workload: &str) {
        self.changed_templates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(workload.to_string());
    }

    /// The Deployments (`namespace/name`) whose pod template faults changed.
    pub fn changed_templates(&self) -> Vec<String> {
        self.changed_templates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// The namespaces faults deleted.
    pub fn deleted_namespaces(&self) -> Vec<String> {
        self.deleted_namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Whether a fault deleted this namespace.
    pub fn is_fault_namespace(&self, ns: &str) -> bool {
        self.deleted_namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(ns)
    }

    /// The answer to give this call, if a rule fires for it; the answer is logged as
    /// injected. The first rule that fires wins; every matching rule counts the call.
    pub fn check_from(&self, caller: &str, verb: &str, resource: &str) -> Option<FaultAnswer> {
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        for rule in rules
            .iter_mut()
            .filter(|r| r.matches(verb, resource, caller))
        {
            if let Some(code) = rule.fire(verb, resource, caller) {
                let answer = FaultAnswer::for_code(code, verb, resource);
                self.injected.record(
                    &rule.label,
                    "kubernetes",
                    &format!("{verb} {resource}"),
                    caller,
                    answer.code(),
                );
                return Some(answer);
            }
        }
        None
    }

    /// [`Faults::check_from`] for an unknown caller.
    pub fn check(&self, verb: &str, resource: &str) -> Option<FaultAnswer> {
        self.check_from(UNKNOWN_CALLER, verb, resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_rule_lets_after_calls_through_then_fails_times_calls_of_its_function_only() {
        let f = Faults::default();
        f.add(
            FaultRule::new("patch", "nodes", 500)
                .after(1)
                .times(2)
                .function(Some("taint")),
        );
        let codes: Vec<Option<u16>> = [
            "ngm/taint",
            "ngm/rollback",
            "ngm/taint",
            "ngm/taint",
            "ngm/taint",
        ]
        .iter()
        .map(|c| f.check_from(c, "patch", "nodes").map(|a| a.code()))
        .collect();
        assert_eq!(codes, [None, None, Some(500), Some(500), None]);
        assert_eq!(f.injected().total(), 2);
        let log = f.injected().snapshot();
        assert_eq!(log[0].caller, "ngm/taint");
        assert_eq!(log[0].call, "patch nodes");
    }

    #[test]
    fn a_rate_rule_fails_about_its_share_and_the_same_seed_fails_the_same_calls() {
        let run = |seed: u64| {
            let f = Faults::default();
            f.add(FaultRule::rate(0.1, seed, &[500, 503, 429]));
            (0..2000)
                .map(|_| {
                    f.check_from("ngm/retire", "patch", "pods")
                        .map(|a| a.code())
                })
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7), "deterministic from the seed");
        assert_ne!(a, run(8), "another seed, other calls");
        let failed = a.iter().flatten().count();
        assert!(
            (120..=280).contains(&failed),
            "{failed} of 2000 at rate 0.1"
        );
        for code in [429, 500, 503] {
            assert!(a.contains(&Some(code)), "code {code} drawn");
        }
    }

    #[test]
    fn callers_name_their_function() {
        assert_eq!(
            kubernetes_caller(Some("ngm/check-surge")),
            "ngm/check-surge"
        );
        assert_eq!(kubernetes_caller(None), UNKNOWN_CALLER);
        assert_eq!(caller_function("ngm/check-surge"), Some("check-surge"));
        assert_eq!(caller_function("app/ngm-local-cleanup"), Some("cleanup"));
        assert_eq!(caller_function("kubectl/v1.32.0"), None);
        assert!(function_matches(None, "kubectl/v1.32.0"));
        assert!(!function_matches(Some("drain"), "ngm/retire"));
    }
}

/// "`replicas` pods of this workload crash at every start" (a `crashLoop` fault), as the
/// kubelet reads it: the workload's namespace and pod labels, and for a StatefulSet its name
/// (there the highest ordinals crash, so an OrderedReady set still starts the others).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashLoopRule {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub replicas: usize,
    pub stateful_set: Option<String>,
    /// Only pods whose first container runs this image (a `badRollout`'s broken image).
    pub image: Option<String>,
}

impl CrashLoopRule {
    /// Whether the pod belongs to the workload (and runs the rule's image, if it names one).
    pub fn matches(&self, pod: &k8s_openapi::api::core::v1::Pod) -> bool {
        let image = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.as_deref());
        pod.metadata.namespace.as_deref() == Some(self.namespace.as_str())
            && pod
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| self.labels.iter().all(|(k, v)| l.get(k) == Some(v)))
            && self
                .image
                .as_ref()
                .is_none_or(|i| image == Some(i.as_str()))
    }
}

/// The crash-loop rules the kubelet applies.
#[derive(Debug, Default)]
pub struct CrashLoops {
    rules: Mutex<Vec<CrashLoopRule>>,
}

impl CrashLoops {
    pub fn add(&self, rule: CrashLoopRule) {
        self.rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(rule);
    }

    pub fn rules(&self) -> Vec<CrashLoopRule> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
