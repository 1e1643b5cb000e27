//! JSON to `MigrationRequest`, with serde's errors turned into field errors.

use super::{FieldError, MigrationRequest, validate};

/// Parses a request. A type error or an unknown field becomes one `FieldError` naming its path.
pub fn parse_request(json: &str) -> Result<MigrationRequest, Vec<FieldError>> {
    let mut de = serde_json::Deserializer::from_str(json);
    let req: MigrationRequest = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." {
            "request".to_string()
        } else {
            path
        };
        vec![FieldError::new(
            field,
            format!("is invalid: {}", err.inner()),
        )]
    })?;
    // Trailing garbage after the object is as wrong as a bad field.
    de.end()
        .map_err(|e| vec![FieldError::new("request", format!("is invalid: {e}"))])?;
    Ok(req)
}

/// Parses and validates: every problem the request alone can show.
pub fn check_request(json: &str) -> Result<MigrationRequest, Vec<FieldError>> {
    let req = parse_request(json)?;
    validate(&req).map(|()| req)
}
