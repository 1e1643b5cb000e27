//! Syntax rules for names, ids and labels. Each returns `Err(reason)` for a bad value; the reason
//! is a phrase that reads after the field name.

const AMI_TYPES: &[&str] = &[
    "AL2_x86_64",
    "AL2_x86_64_GPU",
    "AL2_ARM_64",
    "CUSTOM",
    "BOTTLEROCKET_ARM_64",
    "BOTTLEROCKET_x86_64",
    "BOTTLEROCKET_ARM_64_FIPS",
    "BOTTLEROCKET_x86_64_FIPS",
    "BOTTLEROCKET_ARM_64_NVIDIA",
    "BOTTLEROCKET_x86_64_NVIDIA",
    "WINDOWS_CORE_2019_x86_64",
    "WINDOWS_FULL_2019_x86_64",
    "WINDOWS_CORE_2022_x86_64",
    "WINDOWS_FULL_2022_x86_64",
    "AL2023_x86_64_STANDARD",
    "AL2023_ARM_64_STANDARD",
    "AL2023_x86_64_NEURON",
    "AL2023_x86_64_NVIDIA",
    "AL2023_ARM_64_NVIDIA",
];

/// Label-key prefixes EKS refuses on node-group labels; their subdomains are reserved as well.
pub const RESERVED_LABEL_PREFIXES: &[&str] = &["kubernetes.io", "k8s.io", "eks.amazonaws.com"];

type Rule = Result<(), String>;

fn alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// EKS node group and cluster names: `[A-Za-z0-9][A-Za-z0-9_-]*`, 1–`max` characters.
pub fn eks_name(s: &str, max: usize) -> Rule {
    if s.is_empty() || s.len() > max {
        return Err(format!("must be 1–{max} characters, got {}", s.len()));
    }
    if !s.starts_with(alnum) {
        return Err(format!("({s:?}) must start with a letter or digit"));
    }
    if !s.chars().all(|c| alnum(c) || c == '-' || c == '_') {
        return Err(format!(
            "({s:?}) may contain only letters, digits, '-' and '_'"
        ));
    }
    Ok(())
}

/// Auto Scaling group names: 1–255 printable characters.
pub fn asg_name(s: &str) -> Rule {
    if s.is_empty() || s.len() > 255 {
        return Err(format!("must be 1–255 characters, got {}", s.len()));
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// AWS region names such as `eu-west-1` or `us-gov-east-1`.
pub fn region(s: &str) -> Rule {
    let parts: Vec<&str> = s.split('-').collect();
    let ok = parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(format!("({s:?}) is not an AWS region such as eu-west-1"))
    }
}

/// EC2 instance types: `family.size`, e.g. `c5.4xlarge`, `m7g.large`, `u-6tb1.metal`.
pub fn instance_type(s: &str) -> Rule {
    let bad = || {
        Err(format!(
            "({s:?}) is not an instance type such as m7g.large or c5.4xlarge"
        ))
    };
    let Some((family, size)) = s.split_once('.') else {
        return bad();
    };
    let family_ok = family.starts_with(|c: char| c.is_ascii_lowercase())
        && family.chars().any(|c| c.is_ascii_digit())
        && family
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let named = [
        "nano", "micro", "small", "medium", "large", "xlarge", "metal",
    ];
    let size_ok = named.contains(&size)
        || size
            .strip_suffix("xlarge")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        || size.strip_prefix("metal-").is_some_and(|n| {
            n.strip_suffix("xl")
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
        });
    if family_ok && size_ok { Ok(()) } else { bad() }
}

pub fn ami_type(s: &str) -> Rule {
    if AMI_TYPES.contains(&s) {
        Ok(())
    } else {
        Err(format!(
            "({s:?}) is not an EKS AMI type such as AL2023_x86_64_STANDARD"
        ))
    }
}

fn hex_id(s: &str, prefix: &str, example: &str) -> Rule {
    let ok = s.strip_prefix(prefix).is_some_and(|h| {
        (h.len() == 8 || h.len() == 17) && h.chars().all(|c| c.is_ascii_hexdigit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!("({s:?}) is not an id such as {example}"))
    }
}

pub fn ami_id(s: &str) -> Rule {
    hex_id(s, "ami-", "ami-0abcdef1234567890")
}

pub fn subnet_id(s: &str) -> Rule {
    hex_id(s, "subnet-", "subnet-0abcdef1234567890")
}

pub fn security_group_id(s: &str) -> Rule {
    hex_id(s, "sg-", "sg-0abcdef1234567890")
}

pub fn launch_template_id(s: &str) -> Rule {
    hex_id(s, "lt-", "lt-0abcdef1234567890")
}

pub fn launch_template_version(s: &str) -> Rule {
    let numeric = !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) && s != "0";
    if numeric || s == "$Latest" || s == "$Default" {
        Ok(())
    } else {
        Err(format!(
            "({s:?}) must be a version number, $Latest or $Default"
        ))
    }
}

pub fn base64(s: &str) -> Rule {
    let ok = s.len().is_multiple_of(4)
        && s.trim_end_matches('=').len() + 2 >= s.len()
        && s.trim_end_matches('=')
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/');
    if ok {
        Ok(())
    } else {
        Err("is not valid base64".into())
    }
}

/// A DNS-1123 label (namespaces): lowercase alphanumerics and '-', at most 63.
pub fn dns_label(s: &str) -> Rule {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!("({s:?}) is not a DNS-1123 label"))
    }
}

/// A DNS-1123 subdomain (object names, label prefixes): labels joined by '.', at most 253.
pub fn dns_subdomain(s: &str) -> Rule {
    if s.len() > 253 || s.split('.').any(|part| dns_label(part).is_err()) {
        return Err(format!("({s:?}) is not a DNS-1123 subdomain"));
    }
    Ok(())
}

/// The name part of a label key, and a label value when not empty: at most 63 characters,
/// alphanumeric at both ends, `-`, `_` and `.` inside.
fn qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(alnum)
        && s.ends_with(alnum)
        && s.chars()
            .all(|c| alnum(c) || c == '-' || c == '_' || c == '.')
}

/// A Kubernetes label, annotation or taint key: `[prefix/]name`.
pub fn label_key(s: &str) -> Rule {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if prefix.is_some_and(|p| dns_subdomain(p).is_err()) || !qualified_name_part(name) {
        return Err(format!(
            "({s:?}) is not a valid key: an optional DNS prefix and '/', then 1–63 alphanumerics, '-', '_' or '.'"
        ));
    }
    Ok(())
}

pub fn label_value(s: &str) -> Rule {
    if s.is_empty() || qualified_name_part(s) {
        Ok(())
    } else {
        Err(format!(
            "({s:?}) is not a valid value: at most 63 alphanumerics, '-', '_' or '.', alphanumeric at both ends"
        ))
    }
}

/// Rejects keys under a prefix EKS reserves.
pub fn unreserved_label_key(s: &str) -> Rule {
    let Some((prefix, _)) = s.split_once('/') else {
        return Ok(());
    };
    for reserved in RESERVED_LABEL_PREFIXES {
        if prefix == *reserved || prefix.ends_with(&format!(".{reserved}")) {
            return Err(format!(
                "({s:?}) uses the reserved prefix {reserved}/, which EKS refuses on node-group labels"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_types_follow_family_dot_size() {
        for ok in [
            "c5.4xlarge",
            "m7g.large",
            "t3.micro",
            "m5dn.24xlarge",
            "u-6tb1.metal",
            "c7i.metal-24xl",
            "inf2.xlarge",
        ] {
            assert_eq!(instance_type(ok), Ok(()), "{ok}");
        }
        for bad in [
            "c5",
            "c5.",
            ".large",
            "C5.large",
            "c5.huge",
            "m.large",
            "c5.xxlarge",
            "c5.4xlarge.x",
        ] {
            assert!(instance_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn eks_names_start_with_a_letter_or_digit() {
        assert_eq!(eks_name("ng-a_1", 63), Ok(()));
        assert_eq!(eks_name("1ng", 63), Ok(()));
        assert!(eks_name("-ng", 63).is_err());
        assert!(eks_name("ng.a", 63).is_err());
        assert!(eks_name("", 63).is_err());
        assert!(eks_name(&"a".repeat(64), 63).is_err());
        assert_eq!(eks_name(&"a".repeat(63), 63), Ok(()));
    }

    #[test]
    fn reserved_prefixes_and_their_subdomains_are_refused() {
        assert!(unreserved_label_key("kubernetes.io/role").is_err());
        assert!(unreserved_label_key("node.kubernetes.io/foo").is_err());
        assert!(unreserved_label_key("k8s.io/x").is_err());
        assert!(unreserved_label_key("eks.amazonaws.com/nodegroup").is_err());
        assert_eq!(unreserved_label_key("example.com/team"), Ok(()));
        assert_eq!(unreserved_label_key("mykubernetes.io/x"), Ok(()));
        assert_eq!(unreserved_label_key("team"), Ok(()));
    }

    #[test]
    fn label_keys_and_values_follow_kubernetes_syntax() {
        assert_eq!(label_key("example.com/team-a"), Ok(()));
        assert_eq!(label_key("team"), Ok(()));
        assert!(label_key("Example.com/x").is_err());
        assert!(label_key("a/b/c").is_err());
        assert!(label_key("-x").is_err());
        assert_eq!(label_value(""), Ok(()));
        assert_eq!(label_value("v1.2_x"), Ok(()));
        assert!(label_value("bad value").is_err());
        assert!(label_value(&"v".repeat(64)).is_err());
    }

    #[test]
    fn aws_ids_and_regions_are_checked() {
        assert_eq!(ami_id("ami-0abcdef1234567890"), Ok(()));
        assert_eq!(ami_id("ami-12345678"), Ok(()));
        assert!(ami_id("ami-xyz").is_err());
        assert_eq!(subnet_id("subnet-0abcdef1234567890"), Ok(()));
        assert!(subnet_id("sn-0abcdef1").is_err());
        assert_eq!(region("eu-west-1"), Ok(()));
        assert_eq!(region("us-gov-east-1"), Ok(()));
        assert!(region("europe").is_err());
        assert!(region("eu-west").is_err());
        assert_eq!(launch_template_version("$Latest"), Ok(()));
        assert_eq!(launch_template_version("12"), Ok(()));
        assert!(launch_template_version("latest").is_err());
        assert_eq!(base64("aGVsbG8="), Ok(()));
        assert!(base64("not base64!").is_err());
    }
}
