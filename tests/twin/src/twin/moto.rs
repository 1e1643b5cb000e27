//! The few calls the twin makes to the moto wrapper's own endpoints (tests/aws/moto_server.py:
//! `POST /ngm/faults`, `GET /ngm/requests`, `GET /ngm/injected`), over plain HTTP/1.1.

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends one request and returns the status code and the body.
pub async fn request(
    moto_url: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, String), String> {
    let addr = moto_url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{moto_url}: not an http:// URL"))?
        .trim_end_matches('/');
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let payload = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    );
    conn.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    conn.write_all(payload.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    conn.read_to_string(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| "no HTTP response".to_string())?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    Ok((code, body.to_string()))
}

/// `GET path` as JSON, or `None` when moto cannot say (an older or a plain moto).
pub async fn get_json(moto_url: &str, path: &str) -> Option<Value> {
    match request(moto_url, "GET", path, None).await {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}
