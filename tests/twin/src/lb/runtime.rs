//! The task that runs every load balancer and the probe: it follows the store's changes,
//! brings target sets, health checks and requests up to the clock's now, and sleeps until
//! the next thing is due or the cluster changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::{Notify, mpsc};

use super::Balancer;
use super::aws::{self, AwsCmd, AwsShared, TargetCall};
use super::ip;
use super::probe::Probe;
use super::settings::{self, LbSettings};
use super::targets::TargetGroup;
use super::world::World;
use crate::clock::secs_delta;
use crate::scenario::{LoadBalancerSpec, TargetType};
use crate::sim::InFlight;
use crate::store::{EventKind, Resource, Store, WatchEvent};

pub(super) struct State {
    pub world: World,
    pub balancers: HashMap<(String, String), Balancer>,
    pub probe: Probe,
    pub specs: HashMap<(String, String), LoadBalancerSpec>,
    /// Auto Scaling group names by node group.
    pub asg_names: HashMap<String, Vec<String>>,
    pub aws: Arc<AwsShared>,
    pub nodes_dirty: bool,
}

/// How often, in simulated time, the load balancers attached to Auto Scaling groups look at
/// the attachments.
const ATTACHMENT_CHECK_SECONDS: f64 = 2.0;

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// Whether a Service gets a load balancer.
fn is_balanced(svc: &Value, specs: &HashMap<(String, String), LoadBalancerSpec>) -> bool {
    let key = (
        str_at(svc, "/metadata/namespace").to_string(),
        str_at(svc, "/metadata/name").to_string(),
    );
    // IP targets reach the pods whatever the Service's type (an Ingress backend, a
    // TargetGroupBinding's Service).
    let ip = specs
        .get(&key)
        .is_some_and(|s| s.target_type == TargetType::Ip);
    ip || str_at(svc, "/spec/type") == "LoadBalancer"
        || (str_at(svc, "/spec/type") == "NodePort"
            && (specs.contains_key(&key)
                || svc
                    .pointer(&format!(
                        "/metadata/annotations/{}",
                        settings::ANN_LB_KIND.replace('/', "~1")
                    ))
                    .is_some()))
}

impl State {
    pub(super) fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates, updates or removes the load balancer of one Service.
    pub(super) fn on_service(
        &mut self,
        kind: EventKind,
        svc: &Value,
        store: &Store,
        aws: Option<&mpsc::UnboundedSender<AwsCmd>>,
    ) {
        let key = (
            str_at(svc, "/metadata/namespace").to_string(),
            str_at(svc, "/metadata/name").to_string(),
        );
        if kind == EventKind::Deleted || !is_balanced(svc, &self.specs) {
            self.balancers.remove(&key);
            return;
        }
        let local = str_at(svc, "/spec/externalTrafficPolicy") == "Local";
        let port0 = svc.pointer("/spec/ports/0");
        let num = |p: &str| {
            port0
                .and_then(|v| v.get(p))
                .and_then(Value::as_i64)
                .and_then(|n| i32::try_from(n).ok())
        };
        let (port, node_port) = (num("port").unwrap_or(80), num("nodePort").unwrap_or(30080));
        if let Some(lb) = self.balancers.get_mut(&key) {
            lb.local = local;
            return;
        }
        let settings = match self.specs.get(&key) {
            Some(spec) => LbSettings::from_spec(spec, local),
            None => LbSettings::from_service(svc, local),
        };
        let through = self.specs.get(&key).map(|s| s.through).unwrap_or_default();
        // Who follows the nodes: the in-tree service controller for its CLB and `nlb` NLB,
        // the Load Balancer Controller for the rest.
        let in_tree = settings.kind == crate::scenario::LbKind::Clb
            || svc
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(settings::ANN_LB_TYPE))
                .and_then(Value::as_str)
                == Some("nlb");
        let node_lag = if in_tree {
            self.world.lag.service_controller_seconds
        } else {
            self.world.lag.load_balancer_controller_seconds
        };
        // An IP target is registered with the pod's port.
        let node_port = if settings.ip_targets {
            num("targetPort").unwrap_or(port)
        } else {
            node_port
        };
        let attach: Vec<String> = self
            .specs
            .get(&key)
            .map(|s| {
                s.attached_to
                    .iter()
                    .flat_map(|g| self.asg_names.get(g).cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        let asg_attached = self
            .specs
            .get(&key)
            .is_some_and(|s| !s.attached_to.is_empty());
        match aws {
            Some(tx) => {
                let _ = tx.send(AwsCmd::Ensure {
                    key: key.clone(),
                    settings: settings.clone(),
                    node_port,
                    port,
                    attach,
                    as_traffic_source: self.specs.get(&key).is_some_and(|s| {
                        s.attached_with == crate::scenario::AttachedWith::TrafficSources
                    }),
                    through,
                });
            }
            None if settings.ip_targets => {
                let arn = format!(
                    "arn:aws:elasticloadbalancing:twin:000000000000:targetgroup/{}/0",
                    ip::binding_name(&key.0, &key.1)
                );
                let _ = store.create(
                    Resource::TargetGroupBinding,
                    &key.0,
                    ip::binding_object(&key.0, &key.1, port, &arn),
                );
            }
            None if svc
                .pointer("/status/loadBalancer/ingress/0/hostname")
                .is_none() =>
            {
                let host = format!("{}.elb.twin.local", aws::lb_name("twin", &key.0, &key.1));
                let _ = store.mutate(Resource::Service, &key.0, &key.1, |v| {
                    v["status"]["loadBalancer"] = json!({ "ingress": [{ "hostname": host }] });
                    Ok(())
                });
            }
            None => {}
        }
        self.balancers.insert(
            key.clone(),
            Balancer {
                namespace: key.0,
                service: key.1,
                group: TargetGroup::new(settings),
                local,
                port,
                node_port,
                seeded: false,
                asg_attached,
                attached: Default::default(),
                reported: Default::default(),
                ip_seen: None,
                node_lag,
                nodes_seen: None,
            },
        );
        self.nodes_dirty = true;
    }

    /// Whether `node` passes this load balancer's health check now.
    fn passes(world: &World, lb: &Balancer, node: &str, now: DateTime<Utc>) -> bool {
        Self::check(
            world,
            (&lb.namespace, &lb.service),
            lb.local,
            lb.ip(),
            node,
            now,
        )
    }

    fn check(
        world: &World,
        (ns, service): (&str, &str),
        local: bool,
        ip_target: bool,
        node: &str,
        now: DateTime<Utc>,
    ) -> bool {
        if ip_target {
            return ip::passes(world, node, now);
        }
        // A terminated instance answers no health check, whatever its Node still says.
        world.nodes.contains_key(node)
            && !world.dead.contains_key(node)
            && (!local || world.has_local_endpoint(ns, service, node, now))
    }

    /// Brings every target set, health check and request up to `now`.
    fn step(
        &mut self,
        now: DateTime<Utc>,
        store: &Store,
        inflight: &InFlight,
        aws: Option<&mpsc::UnboundedSender<AwsCmd>>,
    ) {
        self.probe.complete_due(now, &self.balancers, &self.world);
        self.apply_target_calls(now);
        let mut gates: Vec<(String, String, String)> = Vec::new();
        for lb in self.balancers.values_mut() {
            let (ns, service) = (lb.namespace.as_str(), lb.service.as_str());
            lb.group
                .note_drained(now, |node| self.probe.busy(ns, service, node));
            lb.group
                .finish_idle_drains(now, |node| self.probe.busy(ns, service, node));
        }
        let draining_over = self
            .balancers
            .values()
            .any(|lb| lb.group.draining_until().is_some_and(|t| t <= now));
        let resync = std::mem::take(&mut self.nodes_dirty) || draining_over;
        let world = &self.world;
        for lb in self.balancers.values_mut() {
            let mut attach_changed = false;
            if lb.asg_attached {
                let now_attached = self
                    .aws
                    .attached(&(lb.namespace.clone(), lb.service.clone()));
                attach_changed = now_attached != lb.attached;
                lb.attached = now_attached;
            }
            if lb.ip() {
                let (seen, wanted) = ip::wanted(world, &lb.namespace, &lb.service, now);
                let first = lb.ip_seen.is_none();
                if lb.ip_seen.as_ref() != Some(&seen) {
                    // The controller's reconcile: what it wants, against the target group's
                    // targets (draining ones left out).
                    let eligible: Vec<(String, Option<String>, bool)> = wanted
                        .into_iter()
                        .map(|(uid, addr)| {
                            let passes = ip::passes(world, &uid, now);
                            (uid, Some(addr), passes)
                        })
                        .collect();
                    let changes = lb.group.sync(&eligible, now, first);
                    lb.ip_seen = Some(seen);
                    lb.seeded = true;
                    send_changes(aws, lb, &changes);
                } else {
                    lb.group.expire_drains(now);
                }
            } else if lb.asg_attached && (resync || attach_changed || !lb.seeded)
                || !lb.asg_attached
                    && (draining_over || !lb.seeded || {
                        let seen = world.last_node_change(now - secs_delta(lb.node_lag));
                        seen != lb.nodes_seen
                    })
            {
                // Attached to Auto Scaling groups: their InService instances, whatever the
                // node's labels. Otherwise Kubernetes registers every node without the
                // exclusion label, as its controller saw them one lag ago.
                let (asg_attached, attached) = (lb.asg_attached, &lb.attached);
                let seen_at = now - secs_delta(lb.node_lag);
                let nodes = if asg_attached {
                    world.nodes.clone()
                } else {
                    lb.nodes_seen = world.last_node_change(seen_at);
                    world.nodes_as_of(seen_at)
                };
                let eligible: Vec<(String, Option<String>, bool)> = nodes
                    .values()
                    .filter(|n| {
                        if asg_attached {
                            n.instance_id.as_ref().is_some_and(|i| attached.contains(i))
                        } else {
                            !n.excluded
                        }
                    })
                    .map(|n| {
                        (
                            n.name.clone(),
                            n.instance_id.clone(),
                            Self::passes(world, lb, &n.name, now),
                        )
                    })
                    .collect();
                let seed = !lb.seeded;
                let changes = lb.group.sync(&eligible, now, seed);
                lb.seeded = !lb.asg_attached || !lb.attached.is_empty();
                send_changes(aws, lb, &changes);
            }
            if lb.group.check_due(now) {
                let (ns, service, local, ip_target) = (
                    lb.namespace.as_str(),
                    lb.service.as_str(),
                    lb.local,
                    lb.ip(),
                );
                lb.group.check(now, |node| {
                    Self::check(world, (ns, service), local, ip_target, node, now)
                });
                if ip_target {
                    gates.extend(ip_gates_to_set(world, lb));
                }
            }
            // What DescribeTargetHealth / DescribeInstanceHealth answer, when it changed.
            let states = lb.group.instance_states();
            if states != lb.reported
                && let Some(tx) = aws
            {
                let _ = tx.send(AwsCmd::Health {
                    key: (lb.namespace.clone(), lb.service.clone()),
                    node_port: lb.node_port,
                    states: states.clone(),
                });
                lb.reported = states;
            }
        }
        for (ns, name, gate) in gates {
            set_gate(store, &ns, &name, &gate, now);
        }
        self.probe.started = store.load().elapsed(now).map(|e| now - secs_delta(e));
        self.probe
            .issue_due(now, &mut self.balancers, &self.world, inflight);
    }

    /// What others (ngm) registered and deregistered in the emulator, applied to the IP
    /// target groups: a deregistered target drains, and the controller registers it again at
    /// its next reconcile.
    fn apply_target_calls(&mut self, now: DateTime<Utc>) {
        let calls: Vec<TargetCall> = std::mem::take(
            &mut *self
                .aws
                .target_calls
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        if calls.is_empty() {
            return;
        }
        let lbs = self
            .aws
            .lbs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for call in calls {
            let Some(key) = lbs
                .iter()
                .find(|(_, a)| {
                    a.target_group_arn.as_deref() == Some(call.target_group_arn.as_str())
                })
                .map(|(k, _)| k.clone())
            else {
                continue;
            };
            let Some(lb) = self.balancers.get_mut(&key).filter(|lb| lb.ip()) else {
                continue;
            };
            for id in &call.ids {
                let Some(uid) = lb.group.key_of(id).or_else(|| {
                    self.world
                        .pods
                        .values()
                        .find(|p| p.ip.as_deref() == Some(id.as_str()))
                        .map(|p| p.uid.clone())
                }) else {
                    continue;
                };
                if call.deregister {
                    lb.group.deregister(&uid, now);
                } else {
                    lb.group.register(&uid, Some(id.clone()), now, false, false);
                }
            }
        }
    }

    fn next_wake(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let lbs = self
            .balancers
            .values()
            .flat_map(|lb| {
                [
                    lb.group.next_check(),
                    lb.group.draining_until(),
                    lb.group.next_change(now),
                    lb.asg_attached
                        .then(|| now + secs_delta(ATTACHMENT_CHECK_SECONDS)),
                    // A node change its controller has not seen yet.
                    (!lb.asg_attached && !lb.ip())
                        .then(|| {
                            let lag = secs_delta(lb.node_lag);
                            self.world.next_node_change(now - lag).map(|t| t + lag)
                        })
                        .flatten(),
                ]
            })
            .flatten();
        lbs.chain(self.probe.next_wake()).min()
    }
}

/// Gives the emulator a target set's registrations and deregistrations.
fn send_changes(
    aws: Option<&mpsc::UnboundedSender<AwsCmd>>,
    lb: &Balancer,
    changes: &super::targets::TargetChanges,
) {
    let Some(tx) = aws else {
        return;
    };
    let key = (lb.namespace.clone(), lb.service.clone());
    let ids = |v: &[(String, Option<String>)]| {
        v.iter().filter_map(|(_, i)| i.clone()).collect::<Vec<_>>()
    };
    let _ = tx.send(AwsCmd::Register {
        key: key.clone(),
        instances: ids(&changes.registered),
    });
    let _ = tx.send(AwsCmd::Deregister {
        key,
        instances: ids(&changes.deregistered),
    });
}

/// The pods of an IP target group whose readiness gate the controller sets True now: healthy
/// targets whose condition is not True yet (`(namespace, name, condition type)`).
fn ip_gates_to_set(world: &World, lb: &Balancer) -> Vec<(String, String, String)> {
    let gate = ip::readiness_gate(&lb.namespace, &lb.service);
    lb.group
        .states()
        .into_iter()
        .filter(|(_, st)| *st == super::TargetState::Healthy)
        .filter_map(|(uid, _)| world.pods.get(&uid))
        .filter(|p| p.gates_pending.contains(&gate))
        .map(|p| (p.namespace.clone(), p.name.clone(), gate.clone()))
        .collect()
}

/// Sets a readiness gate's condition True, and the pod's Ready condition as the kubelet then
/// computes it.
fn set_gate(store: &Store, ns: &str, name: &str, gate: &str, now: DateTime<Utc>) {
    let _ = store.mutate(Resource::Pod, ns, name, |v| {
        if v.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(());
        }
        crate::sim::objects::set_condition(v, gate, "True", None, None, now);
        let containers = v
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "ContainersReady" && c["status"] == "True")
            });
        if containers {
            crate::sim::kubelet::set_ready_from_gates(v, now);
        }
        Ok(())
    });
}

impl State {
    fn on_event(
        &mut self,
        ev: &WatchEvent,
        store: &Store,
        aws: Option<&mpsc::UnboundedSender<AwsCmd>>,
    ) {
        self.world.apply(ev);
        match ev.resource {
            Resource::Node => self.nodes_dirty = true,
            Resource::Service => self.on_service(ev.kind, &ev.object, store, aws),
            _ => {}
        }
    }

    fn on_lag(&mut self, store: &Store, now: DateTime<Utc>) {
        self.world.reload(store, now);
        self.nodes_dirty = true;
    }
}

/// Runs until `stop` is notified or the store's event channel closes.
pub(super) async fn run(
    state: Arc<Mutex<State>>,
    mut rx: broadcast::Receiver<WatchEvent>,
    store: Store,
    inflight: InFlight,
    aws: Option<mpsc::UnboundedSender<AwsCmd>>,
    stop: Arc<Notify>,
) {
    let clock = store.clock().clone();
    loop {
        let wake = {
            let mut st = State::lock(&state);
            loop {
                match rx.try_recv() {
                    Ok(ev) => st.on_event(&ev, &store, aws.as_ref()),
                    Err(TryRecvError::Lagged(_)) => st.on_lag(&store, clock.now()),
                    Err(_) => break,
                }
            }
            // Terminated instances are not in any event: their Nodes linger as they were.
            st.world.dead = store.dead_instances().terminated();
            st.step(clock.now(), &store, &inflight, aws.as_ref());
            st.next_wake(clock.now())
        };
        let sleep = async {
            match wake {
                Some(t) => clock.sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.notified() => return,
            r = rx.recv() => match r {
                Ok(ev) => State::lock(&state).on_event(&ev, &store, aws.as_ref()),
                Err(RecvError::Lagged(_)) => State::lock(&state).on_lag(&store, clock.now()),
                Err(RecvError::Closed) => return,
            },
            _ = sleep => {}
        }
    }
}
