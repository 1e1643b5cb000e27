//! The `ngm-twin serve` binary: its first line is the URL, then the client environment;
//! kubectl works with the kubeconfig it writes; SIGTERM stops it cleanly and writes the report.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_its_url_first_and_kubectl_lists_the_scenario_nodes() {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/pulumi-tutorial.yaml");
    let dir = std::env::temp_dir().join(format!("ngm-twin-serve-{}", std::process::id()));
    let kubeconfig = dir.join("kubeconfig");
    let report = dir.join("report.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ngm-twin"))
        .arg("serve")
        .arg("--scenario")
        .arg(&scenario)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--report")
        .arg(&report)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("ngm-twin starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .expect("a first line within 120 s")
        .expect("stdout readable")
        .expect("a first line");
    let port = first
        .strip_prefix("http://127.0.0.1:")
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("first line is not the URL: {first:?}"));
    assert!(port > 0);
    let mut env = Vec::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await
    {
        env.push(line);
        if env.iter().any(|l| l.starts_with("NGM_CLUSTER_ENDPOINT=")) {
            break;
        }
    }
    assert!(
        env.contains(&format!("AWS_ENDPOINT_URL_EKS={first}")),
        "{env:?}"
    );
    assert!(
        env.contains(&format!("NGM_CLUSTER_ENDPOINT={first}")),
        "{env:?}"
    );
    assert!(
        env.iter()
            .any(|l| l.starts_with("AWS_ENDPOINT_URL=http://")),
        "{env:?}"
    );

    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(["get", "nodes", "--no-headers"])
        .output()
        .await
        .expect("kubectl runs (it must be on PATH)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl get nodes failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 3, "the tutorial's three nodes:\n{text}");
    assert!(
        rows.iter()
            .all(|r| r.split_whitespace().nth(1) == Some("Ready")),
        "{text}"
    );

    let pid = child.id().expect("still running").to_string();
    let term = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(term.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("ngm-twin exits within 30 s of SIGTERM")
        .expect("wait");
    assert!(status.success(), "ngm-twin exited with {status}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("the report is written"))
            .expect("the report is JSON");
    assert_eq!(report["scenario"], "pulumi-tutorial");
    assert_eq!(report["invariants"]["budgetsRespected"], true);
    assert!(
        report["requests"]["kubernetesTotal"].as_u64() >= Some(1),
        "kubectl's requests are counted"
    );
}
