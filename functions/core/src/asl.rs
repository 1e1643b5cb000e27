//! Names the state machine and the code share: each Task's `${<Name>FunctionArn}` substitution
//! names the step function whose crate and binary are `<name>` kebab-cased.

/// `ValidateAndPlan` → `validate-and-plan`.
pub fn function_name(stem: &str) -> String {
    let mut out = String::new();
    for (i, c) in stem.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `ValidateAndPlanFunctionArn` → `validate-and-plan`; `None` for other substitutions.
pub fn function_for_substitution(key: &str) -> Option<String> {
    key.strip_suffix("FunctionArn").map(function_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutions_name_kebab_cased_functions() {
        assert_eq!(
            function_for_substitution("CheckGroupReadyFunctionArn").as_deref(),
            Some("check-group-ready")
        );
        assert_eq!(function_for_substitution("EventBusName"), None);
        assert_eq!(function_name("Drain"), "drain");
    }
}
