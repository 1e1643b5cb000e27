//! The table `ngm bench` prints, and its Markdown form for the README.

use std::fmt::Write as _;

use super::{BenchReport, StrategyResult};

fn failures(r: &StrategyResult) -> String {
    if r.failures.is_empty() {
        return "-".into();
    }
    r.failures
        .iter()
        .map(|(stream, reasons)| {
            let by: Vec<String> = reasons.iter().map(|(k, n)| format!("{k} {n}")).collect();
            format!("{stream}: {}", by.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn ratio(r: &StrategyResult) -> String {
    if r.ratio > 0.0 {
        format!("{:.2}", r.ratio)
    } else {
        "-".into()
    }
}

const HEADERS: [&str; 12] = [
    "strategy",
    "outcome",
    "sent",
    "failed",
    "PDB viol.",
    "forced",
    "duration s",
    "critical s",
    "ratio",
    "k8s req.",
    "AWS req.",
    "transitions",
];

fn row(r: &StrategyResult) -> [String; 12] {
    let short = r.outcome.split(':').next().unwrap_or_default().to_string();
    [
        r.name.clone(),
        short,
        r.sent_requests.to_string(),
        r.failed_requests.to_string(),
        r.pdb_violations.to_string(),
        r.forced_terminations.to_string(),
        format!("{:.0}", r.duration_seconds),
        format!("{:.0}", r.critical_path_seconds),
        ratio(r),
        r.kubernetes_requests.to_string(),
        r.aws_requests.to_string(),
        r.state_transitions
            .map_or_else(|| "-".to_string(), |n| n.to_string()),
    ]
}

/// The plain-text table, then each strategy's failures by stream and reason, its notes, and
/// the critical path's parts.
pub fn render(report: &BenchReport) -> String {
    let rows: Vec<[String; 12]> = report.strategies.iter().map(row).collect();
    let mut widths = HEADERS.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i < 2 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    let _ = writeln!(out, "bench: {}", report.scenario);
    line(&HEADERS.map(str::to_string), &mut out);
    for r in &rows {
        line(r, &mut out);
    }
    for r in &report.strategies {
        let mut said = Vec::new();
        if r.failed_requests > 0 {
            said.push(format!("failed by stream and reason: {}", failures(r)));
        }
        if r.outcome.contains(':') {
            said.push(r.outcome.clone());
        }
        said.extend(r.notes.iter().cloned());
        for s in said {
            let _ = writeln!(out, "  {}: {s}", r.name);
        }
    }
    let reference = report
        .strategies
        .iter()
        .find(|r| r.name == "ngm")
        .or_else(|| report.strategies.first());
    if let Some(r) = reference {
        let c = &r.critical_path;
        let part = |p: Option<f64>| p.map_or_else(|| "-".to_string(), |s| format!("{s:.0}"));
        let _ = writeln!(
            out,
            "critical path {:.0} s = new group {} + surged pod {} + load balancers {} + termination {} + deletion {} (from {}'s run)",
            r.critical_path_seconds,
            part(c.new_group_seconds),
            part(c.surged_pod_seconds),
            part(c.load_balancer_seconds),
            part(c.termination_seconds),
            part(c.deletion_seconds),
            r.name
        );
    }
    out
}

/// The same table in Markdown, for the README.
pub fn markdown(report: &BenchReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(HEADERS.len()));
    for r in &report.strategies {
        let _ = writeln!(out, "| {} |", row(r).join(" | "));
    }
    out
}
