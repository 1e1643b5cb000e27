//! A moto server for tests and the local runner: started on 127.0.0.1 from the project's Python
//! environment, stopped when dropped (closing its standard input ends it, so it never outlives
//! the test that started it).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The Python that has moto and botocore: `NGM_PYTHON`, else the venv `scripts/bootstrap` makes.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("NGM_PYTHON") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("NGM_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/ngm")))
        .unwrap_or_else(|| PathBuf::from("/tmp/ngm-cache"));
    cache.join("venv/bin/python")
}

/// The repository root: `NGM_REPO`, else the nearest directory above the current one that holds
/// `tests/aws/moto_server.py` (cargo runs tests from their package directory), else the path
/// this crate was built from. The build path alone is not enough: a build cache shared between
/// checkouts can hand one checkout a test binary compiled in another.
pub fn repo_root() -> PathBuf {
    if let Some(p) = std::env::var_os("NGM_REPO") {
        return PathBuf::from(p);
    }
    let marker = Path::new("tests/aws/moto_server.py");
    if let Ok(mut dir) = std::env::current_dir() {
        loop {
            if dir.join(marker).is_file() {
                return dir;
            }
            if !dir.pop() {
                break;
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[derive(Debug)]
pub struct MotoServer {
    pub url: String,
    child: Child,
}

#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    #[error(
        "cannot start moto with {python}: {detail}. Run scripts/bootstrap (the README's test command does) or set NGM_PYTHON"
    )]
    Start { python: String, detail: String },
}

impl MotoServer {
    /// Starts moto; `seed_ssm` is a JSON file of `/aws/...` parameters to insert.
    pub async fn start(seed_ssm: Option<&Path>) -> Result<Self, MotoError> {
        let python = python();
        let fail = |detail: String| MotoError::Start {
            python: python.display().to_string(),
            detail,
        };
        let mut cmd = Command::new(&python);
        cmd.arg(repo_root().join("tests/aws/moto_server.py"));
        if let Some(seed) = seed_ssm {
            cmd.arg("--seed-ssm").arg(seed);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| fail("no stdout".into()))?;
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        let read = reader.read_line(&mut line);
        match tokio::time::timeout(std::time::Duration::from_secs(60), read).await {
            Ok(Ok(n)) if n > 0 && line.starts_with("http://") => Ok(Self {
                url: line.trim().to_owned(),
                child,
            }),
            Ok(Ok(_)) => Err(fail(format!("unexpected first line {line:?}"))),
            Ok(Err(e)) => Err(fail(e.to_string())),
            Err(_) => Err(fail("no URL within 60 s".into())),
        }
    }

    /// Stops the server now (dropping it does the same, less politely).
    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}
