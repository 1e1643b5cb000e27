//! Placeholders in the scenario's migration request that only the running twin can fill:
//! `${subnet:<zone>}` is the twin's subnet in that zone (so a scenario can name the target
//! group's subnets without knowing moto's ids).

use serde_json::Value;

/// Replaces every `${subnet:<zone>}` in the strings of `request` (keys are left alone) with
/// `subnet(zone)`. An unknown zone, or an unknown or unterminated placeholder, is an error.
pub fn resolve_subnets(
    request: &Value,
    subnet: &impl Fn(&str) -> Option<String>,
) -> Result<Value, String> {
    Ok(match request {
        Value::String(s) => Value::String(resolve_str(s, subnet)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve_subnets(v, subnet))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), resolve_subnets(v, subnet)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn resolve_str(s: &str, subnet: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("{s:?}: unterminated ${{"))?;
        let key = &after[..end];
        let zone = key.strip_prefix("subnet:").ok_or_else(|| {
            format!("{s:?}: unknown placeholder ${{{key}}} (the twin fills ${{subnet:<zone>}})")
        })?;
        let id = subnet(zone).ok_or_else(|| {
            format!("${{subnet:{zone}}}: the twin has no subnet in zone {zone:?}")
        })?;
        out.push_str(&id);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn subnets(zone: &str) -> Option<String> {
        match zone {
            "us-west-2a" => Some("subnet-aaa".into()),
            "us-west-2b" => Some("subnet-bbb".into()),
            _ => None,
        }
    }

    #[test]
    fn subnet_placeholders_resolve_to_the_zones_subnet_anywhere_in_the_request() {
        let req = json!({
            "target": {
                "subnets": ["${subnet:us-west-2a}", "${subnet:us-west-2b}"],
                "name": "new",
                "note": "in ${subnet:us-west-2b} only",
            },
            "count": 3,
        });
        let got = resolve_subnets(&req, &subnets).expect("resolves");
        assert_eq!(
            got,
            json!({
                "target": {
                    "subnets": ["subnet-aaa", "subnet-bbb"],
                    "name": "new",
                    "note": "in subnet-bbb only",
                },
                "count": 3,
            })
        );
    }

    #[test]
    fn an_unknown_zone_or_placeholder_is_an_error() {
        let err = resolve_subnets(&json!(["${subnet:eu-west-1a}"]), &subnets).unwrap_err();
        assert!(err.contains("eu-west-1a"), "{err}");
        let err = resolve_subnets(&json!("${vpc:x}"), &subnets).unwrap_err();
        assert!(err.contains("unknown placeholder"), "{err}");
        let err = resolve_subnets(&json!("${subnet:us-west-2a"), &subnets).unwrap_err();
        assert!(err.contains("unterminated"), "{err}");
    }
}
