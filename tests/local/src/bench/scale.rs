//! `ngm bench --scale 10,100,300`: clusters of each size with the same per-node parameters (30
//! pods a node in Deployments of 30, a PDB on every tenth, two load balancers with traffic),
//! each migrated by every strategy; and the chart of duration against size.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Value, json};

use super::{BenchReport, StrategyResult};

pub const PODS_PER_NODE: u32 = 30;

/// The scenario for `nodes` nodes, as YAML-ready JSON.
pub fn scenario(nodes: u32) -> Result<Value, String> {
    if nodes < 3 {
        return Err(format!(
            "--scale {nodes}: at least 3 nodes (one per zone of the generated cluster)"
        ));
    }
    let pods = nodes * PODS_PER_NODE;
    let mut s = serde_json::to_value(ngm_twin::scenario::scale_scenario(nodes, pods))
        .map_err(|e| e.to_string())?;
    s["name"] = json!(format!("scale-{nodes}-nodes"));
    s["description"] = json!(format!(
        "{nodes} nodes, {pods} pods in Deployments of 30 (a PDB on every tenth), two load balancers with traffic"
    ));
    // The same speed as the scenarios': the functions' own time is real time, so every size
    // pays the same for it and the sizes compare.
    s["cluster"]["speed"] = json!(60.0);
    s["cluster"]["nodeGroups"][0]["maxSize"] = json!(nodes * 2);
    let workloads = s["workloads"]
        .as_array_mut()
        .ok_or("the generated scenario has no workloads")?;
    let mut services = Vec::new();
    let mut traffic = Vec::new();
    for (i, kind) in ["CLB", "NLB"].iter().enumerate() {
        let w = workloads
            .get_mut(i)
            .ok_or("the generated scenario has fewer than two workloads")?;
        // A well-behaved web app behind a load balancer: it keeps serving through its
        // consumers' endpoint lag before SIGTERM.
        w["preStopSeconds"] = json!(15);
        let (ns, name) = (w["namespace"].clone(), w["name"].clone());
        services.push(json!({
            "name": name, "namespace": ns, "workload": name, "type": "LoadBalancer",
            "externalTrafficPolicy": "Cluster", "port": 80,
            "loadBalancer": { "kind": kind },
        }));
        traffic.push(json!({
            "service": format!("{}/{}", ns.as_str().unwrap_or_default(), name.as_str().unwrap_or_default()),
            "requestsPerSecond": 20, "requestSeconds": 0.1,
        }));
    }
    s["services"] = json!(services);
    s["traffic"] = json!(traffic);
    s["migration"] = json!({
        "cluster": {"name": s["cluster"]["name"], "region": s["cluster"]["region"]},
        "source": {"managedNodeGroup": s["cluster"]["nodeGroups"][0]["name"]},
        "target": {"name": "scaled-v2", "releaseVersion": "1.33.5-20251105",
                   "scaling": {"min": nodes, "max": nodes * 2, "desired": nodes}},
    });
    s["expect"] = json!({ "outcome": "success" });
    s["workflow"] = json!({ "timeoutSeconds": 7200 });
    Ok(s)
}

/// One size's figures.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalePoint {
    pub nodes: u32,
    pub pods: u32,
    pub report: BenchReport,
}

/// What the scale run prints, by size, then by strategy.
pub fn render(points: &[ScalePoint]) -> String {
    let mut out = String::from(
        "nodes  strategy        outcome  duration s  ratio  k8s req.  objects read  (x cluster)  AWS req.  transitions\n",
    );
    for p in points {
        for r in &p.report.strategies {
            let short = r.outcome.split(':').next().unwrap_or_default();
            let times = if r.cluster_objects > 0 {
                r.objects_read as f64 / r.cluster_objects as f64
            } else {
                0.0
            };
            let _ = writeln!(
                out,
                "{:>5}  {:<14}  {:<7}  {:>10.0}  {:>5.2}  {:>8}  {:>12}  {:>11.2}  {:>8}  {:>11}",
                p.nodes,
                r.name,
                short,
                r.duration_seconds,
                r.ratio,
                r.kubernetes_requests,
                r.objects_read,
                times,
                r.aws_requests,
                r.state_transitions
                    .map_or_else(|| "-".to_string(), |n| n.to_string()),
            );
        }
        if let Some(f) = p
            .report
            .strategies
            .iter()
            .find(|r| r.name == "ngm")
            .and_then(|r| r.functions.as_ref())
        {
            let by: Vec<String> = f
                .iter()
                .map(|(name, s)| {
                    format!(
                        "{name} {} ms {} MiB init {} ms",
                        s.max_millis,
                        s.peak_rss_kib.map_or(0, |k| k / 1024),
                        s.init_millis
                            .map_or_else(|| "-".to_string(), |i| i.to_string())
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "       ngm functions (slowest, peak, init): {}",
                by.join(", ")
            );
        }
    }
    out
}

/// A line chart of duration against size, one line per strategy, as SVG.
pub fn chart(points: &[ScalePoint]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 400.0;
    const L: f64 = 70.0;
    const R: f64 = 150.0;
    const T: f64 = 30.0;
    const B: f64 = 50.0;
    const COLOURS: [&str; 4] = ["#1b7837", "#c51b7d", "#2166ac", "#e08214"];
    let mut names: Vec<&str> = Vec::new();
    for p in points {
        for r in &p.report.strategies {
            if !names.contains(&r.name.as_str()) {
                names.push(&r.name);
            }
        }
    }
    let max_x = points.iter().map(|p| p.nodes).max().unwrap_or(1).max(1) as f64;
    let max_y = points
        .iter()
        .flat_map(|p| p.report.strategies.iter().map(|r| r.duration_seconds))
        .fold(1.0_f64, f64::max);
    let x = |n: f64| L + n / max_x * (W - L - R);
    let y = |s: f64| H - B - s / max_y * (H - T - B);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n"
    );
    let _ = writeln!(
        svg,
        "<line x1=\"{L}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/><line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{}\" stroke=\"black\"/>",
        H - B,
        W - R,
        H - B,
        H - B
    );
    for p in points {
        let px = x(f64::from(p.nodes));
        let _ = writeln!(
            svg,
            "<text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            H - B + 18.0,
            p.nodes
        );
    }
    for i in 0..=4 {
        let v = max_y * f64::from(i) / 4.0;
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.0}</text>",
            L - 6.0,
            y(v) + 4.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">nodes</text><text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">duration (simulated s)</text>",
        (L + W - R) / 2.0,
        H - 10.0,
        (T + H - B) / 2.0,
        (T + H - B) / 2.0
    );
    for (i, name) in names.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let pts: Vec<String> = points
            .iter()
            .filter_map(|p| {
                let r: &StrategyResult = p.report.strategies.iter().find(|r| r.name == *name)?;
                (r.duration_seconds > 0.0)
                    .then(|| format!("{:.1},{:.1}", x(f64::from(p.nodes)), y(r.duration_seconds)))
            })
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            pts.join(" ")
        );
        for pt in &pts {
            let (cx, cy) = pt.split_once(',').unwrap_or_default();
            let _ = writeln!(
                svg,
                "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"3\" fill=\"{colour}\"/>"
            );
        }
        let ly = T + 20.0 * i as f64;
        let _ = writeln!(
            svg,
            "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">{name}</text>",
            W - R + 15.0,
            W - R + 35.0,
            W - R + 40.0,
            ly + 4.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{BenchReport, StrategyResult};

    #[test]
    fn a_generated_cluster_has_the_same_parameters_per_node_at_every_size() {
        for nodes in [10, 100] {
            let v = scenario(nodes).unwrap_or_else(|e| panic!("{e}"));
            let yaml = serde_yaml::to_string(&v).unwrap_or_default();
            let s: ngm_twin::scenario::Scenario =
                serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("{nodes}: {e}"));
            assert_eq!(s.cluster.node_groups[0].desired_size, nodes);
            let pods: i32 = s.workloads.iter().map(|w| w.replicas).sum();
            assert_eq!(
                pods,
                i32::try_from(nodes * PODS_PER_NODE).unwrap_or_default()
            );
            let with_pdb = s.workloads.iter().filter(|w| w.pdb.is_some()).count();
            assert_eq!(with_pdb, s.workloads.len().div_ceil(10));
            assert_eq!(
                s.services
                    .iter()
                    .filter(|x| x.load_balancer.is_some())
                    .count(),
                2
            );
            assert_eq!(s.traffic.len(), 2);
            assert!(s.migration.is_some());
        }
        assert!(scenario(2).is_err_and(|e| e.contains("at least 3")));
    }

    fn point(nodes: u32, durations: &[(&str, f64)]) -> ScalePoint {
        let strategies = durations
            .iter()
            .map(|(name, d)| {
                let mut r: StrategyResult = crate::bench::blank(name);
                r.duration_seconds = *d;
                r
            })
            .collect();
        ScalePoint {
            nodes,
            pods: nodes * PODS_PER_NODE,
            report: BenchReport {
                scenario: String::new(),
                strategies,
            },
        }
    }

    #[test]
    fn the_chart_draws_a_line_per_strategy_through_each_size() {
        let points = [
            point(10, &[("ngm", 300.0), ("replace", 200.0)]),
            point(100, &[("ngm", 320.0), ("replace", 900.0)]),
        ];
        let svg = chart(&points);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains(">ngm</text>") && svg.contains(">replace</text>"));
        let table = render(&points);
        assert_eq!(table.lines().count(), 5);
    }
}
