//! The request's JSON Schema, generated from the Rust types.

use super::MigrationRequest;

/// The JSON Schema of `MigrationRequest` (committed as `statemachine/request.schema.json`).
pub fn request_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(MigrationRequest))
        .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
}
