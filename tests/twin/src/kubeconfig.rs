//! A kubeconfig that points kubectl (or any client) at the twin: plain HTTP, a dummy token.

use std::path::Path;

/// The kubeconfig YAML for a twin served at `url` (`http://127.0.0.1:PORT`).
pub fn kubeconfig_yaml(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: ngm-twin
  cluster:
    server: {url}
contexts:
- name: ngm-twin
  context:
    cluster: ngm-twin
    user: ngm-twin
    namespace: default
current-context: ngm-twin
preferences: {{}}
users:
- name: ngm-twin
  user:
    token: ngm-twin-dummy-token
"
    )
}

/// Writes the kubeconfig to `path` (creating parent directories).
pub fn write_kubeconfig(path: &Path, url: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, kubeconfig_yaml(url))
}
