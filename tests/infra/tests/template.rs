//! `infra/template.yaml` agrees with the code: one function per binary crate under `functions/`
//! (and back), one substitution per `${...}` of the ASL (and back), the build and runtime issue 5
//! asks for, least-privilege roles, the lock table, the triggers and their example events.

use std::collections::{BTreeMap, BTreeSet};

use ngm_infra_tests::{list, read, repo, resources, statements, tagged, template};
use serde_yaml::Value;

/// The `ngm` CLI is the only binary crate under `functions/` that is not a Lambda.
const NOT_A_LAMBDA: &[&str] = &["ngm"];

/// The step functions: every Task of the ASL (the triggers are not in it).
const TRIGGERS: &[&str] = &["ami-watch", "resize-api"];

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// Function logical id -> its `BuildProperties.Binary`.
fn functions(t: &Value) -> BTreeMap<String, String> {
    resources(t, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, f)| {
            (
                id,
                s(&f["Metadata"]["BuildProperties"]["Binary"]).to_string(),
            )
        })
        .collect()
}

/// Binary crates under `functions/` (a `src/main.rs`), by directory name.
fn binary_crates() -> BTreeSet<String> {
    let dir = repo().join("functions");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().join("src/main.rs").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The `name` in a crate's `[package]` table.
fn package_name(manifest: &str) -> Option<String> {
    manifest
        .lines()
        .skip_while(|l| l.trim() != "[package]")
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "name").then(|| v.trim().trim_matches('"').to_string())
        })
}

#[test]
fn every_function_builds_a_binary_crate_and_every_binary_crate_has_a_function() {
    let t = template();
    let fns = functions(&t);
    let workspace = read("Cargo.toml");
    for (id, bin) in &fns {
        assert!(!bin.is_empty(), "{id} names no BuildProperties.Binary");
        assert!(
            repo().join(format!("functions/{bin}/Cargo.toml")).is_file(),
            "{id} builds the binary {bin}, but there is no crate functions/{bin}"
        );
        let manifest = read(&format!("functions/{bin}/Cargo.toml"));
        assert_eq!(
            package_name(&manifest).as_deref(),
            Some(bin.as_str()),
            "{id}: functions/{bin} is not the package {bin}"
        );
        assert!(
            repo()
                .join(format!("functions/{bin}/src/main.rs"))
                .is_file(),
            "{id}: functions/{bin} is not a binary crate"
        );
        assert!(
            workspace.contains(&format!("\"functions/{bin}\"")),
            "{id}: functions/{bin} is not a workspace member"
        );
    }
    let built: BTreeSet<&str> = fns.values().map(String::as_str).collect();
    let missing: Vec<String> = binary_crates()
        .into_iter()
        .filter(|c| !NOT_A_LAMBDA.contains(&c.as_str()) && !built.contains(c.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "binary crates without a function: {missing:?}"
    );
    assert_eq!(
        built.len(),
        fns.len(),
        "two functions build the same binary: {fns:?}"
    );
}

#[test]
fn every_function_is_cargo_lambda_built_for_arm64_al2023_with_json_logs() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    let prop = |f: &Value, k: &str| -> Value {
        match &f["Properties"][k] {
            Value::Null => globals[k].clone(),
            v => v.clone(),
        }
    };
    for (id, f) in resources(&t, "AWS::Serverless::Function") {
        assert_eq!(s(&f["Metadata"]["BuildMethod"]), "rust-cargolambda", "{id}");
        assert_eq!(s(&prop(f, "Runtime")), "provided.al2023", "{id}");
        assert_eq!(s(&prop(f, "Handler")), "bootstrap", "{id}");
        assert_eq!(
            prop(f, "Architectures"),
            Value::Sequence(vec!["arm64".into()]),
            "{id}"
        );
        assert_eq!(s(&prop(f, "LoggingConfig")["LogFormat"]), "JSON", "{id}");
        // cargo lambda builds in the function's own package (so that Cargo resolves its
        // features alone, not the whole workspace's), inside the workspace whose Cargo.lock
        // pins the build.
        let code = prop(f, "CodeUri");
        let bin = s(&f["Metadata"]["BuildProperties"]["Binary"]);
        assert_eq!(s(&code), format!("../functions/{bin}"), "{id}: CodeUri");
        let package = repo().join("infra").join(s(&code));
        assert!(
            package.join("Cargo.toml").is_file() && repo().join("Cargo.lock").is_file(),
            "{id}: CodeUri {code:?} is not a package of the workspace"
        );
    }
}

#[test]
fn every_function_has_a_role_of_its_own() {
    let t = template();
    let mut seen = BTreeMap::new();
    for (id, f) in resources(&t, "AWS::Serverless::Function") {
        let role = tagged(&f["Properties"]["Role"], "GetAtt")
            .map(|v| s(v).trim_end_matches(".Arn").to_string())
            .unwrap_or_else(|| panic!("{id}: Role is not !GetAtt <Role>.Arn"));
        assert_eq!(
            s(&t["Resources"][role.as_str()]["Type"]),
            "AWS::IAM::Role",
            "{id}: {role} is not a role of this template"
        );
        assert!(
            f["Properties"]["Policies"].is_null(),
            "{id}: SAM policy templates next to its own role"
        );
        if let Some(other) = seen.insert(role.clone(), id.clone()) {
            panic!("{id} and {other} share the role {role}");
        }
    }
}

/// Every `${Name}` in the ASL text.
fn asl_placeholders() -> BTreeSet<String> {
    let text = read("statemachine/migration.asl.json");
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_string()))
        .collect()
}

/// The migration state machine (the other one is the cleanup machine).
fn state_machine(t: &Value) -> Value {
    let machines = resources(t, "AWS::Serverless::StateMachine");
    assert_eq!(
        machines.len(),
        2,
        "the migration and cleanup state machines"
    );
    t["Resources"]["MigrationStateMachine"]["Properties"].clone()
}

fn cleanup_machine(t: &Value) -> Value {
    t["Resources"]["CleanupStateMachine"]["Properties"].clone()
}

#[test]
fn every_asl_placeholder_is_substituted_and_every_substitution_is_used() {
    let t = template();
    let sm = state_machine(&t);
    assert_eq!(
        s(&sm["DefinitionUri"]),
        "../statemachine/migration.asl.json"
    );
    let subs: BTreeSet<String> = sm["DefinitionSubstitutions"]
        .as_mapping()
        .map(|m| m.keys().map(|k| s(k).to_string()).collect())
        .unwrap_or_default();
    let used = asl_placeholders();
    assert!(used.len() > 10, "found only {used:?} in the ASL");
    let unset: Vec<_> = used.difference(&subs).collect();
    let unused: Vec<_> = subs.difference(&used).collect();
    assert!(
        unset.is_empty(),
        "placeholders without a substitution: {unset:?}"
    );
    assert!(
        unused.is_empty(),
        "substitutions the ASL never uses: {unused:?}"
    );
}

#[test]
fn every_function_arn_substitution_names_the_step_function_of_that_task() {
    let t = template();
    let sm = state_machine(&t);
    let fns = functions(&t);
    let mut steps = BTreeSet::new();
    for (key, v) in sm["DefinitionSubstitutions"]
        .as_mapping()
        .into_iter()
        .flatten()
    {
        let Some(prefix) = s(key).strip_suffix("FunctionArn") else {
            continue;
        };
        let target = tagged(v, "GetAtt").map(s).unwrap_or_default();
        let id = format!("{prefix}Function");
        assert_eq!(target, format!("{id}.Arn"), "{key:?}");
        let bin = fns
            .get(&id)
            .unwrap_or_else(|| panic!("{key:?} names {id}, which is not a function"));
        steps.insert(bin.clone());
    }
    let lambdas: BTreeSet<String> = fns
        .values()
        .filter(|b| !TRIGGERS.contains(&b.as_str()) && b.as_str() != "cleanup")
        .cloned()
        .collect();
    assert_eq!(steps, lambdas, "the Tasks and the step functions differ");
    assert_eq!(steps.len(), 14);
}

#[test]
fn the_state_machines_log_and_trace() {
    let t = template();
    for sm in [state_machine(&t), cleanup_machine(&t)] {
        assert!(!sm["Logging"]["Level"].is_null(), "no log level");
        assert_eq!(sm["Logging"]["IncludeExecutionData"], Value::Bool(false));
        assert!(
            !sm["Logging"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"].is_null(),
            "no log group"
        );
        assert_eq!(sm["Tracing"]["Enabled"], Value::Bool(true));
    }
}

#[test]
fn the_cleanup_machine_runs_the_cleanup_function_and_its_role_invokes_only_that() {
    let t = template();
    let sm = cleanup_machine(&t);
    assert_eq!(s(&sm["DefinitionUri"]), "../statemachine/cleanup.asl.json");
    let subs = sm["DefinitionSubstitutions"]
        .as_mapping()
        .cloned()
        .unwrap_or_default();
    assert_eq!(subs.len(), 1, "{subs:?}");
    let arn = subs
        .get("CleanupFunctionArn")
        .and_then(|v| tagged(v, "GetAtt"))
        .map(s);
    assert_eq!(arn, Some("CleanupFunction.Arn"));
    assert!(read("statemachine/cleanup.asl.json").contains("${CleanupFunctionArn}"));
    assert_eq!(
        functions(&t).get("CleanupFunction").map(String::as_str),
        Some("cleanup")
    );
    let role = tagged(&sm["Role"], "GetAtt").map(s).unwrap_or_default();
    let role = role.trim_end_matches(".Arn");
    let invoked: Vec<String> = statements(&t["Resources"][role])
        .into_iter()
        .filter(|st| {
            list(&st["Action"])
                .iter()
                .any(|a| s(a) == "lambda:InvokeFunction")
        })
        .flat_map(|st| list(&st["Resource"]))
        .map(|r| match &r {
            Value::Tagged(tv) => format!("{} {}", tv.tag, s(&tv.value)),
            other => s(other).to_string(),
        })
        .collect();
    assert_eq!(
        invoked,
        vec![
            "!GetAtt CleanupFunction.Arn".to_string(),
            "!Sub ${CleanupFunction.Arn}:*".to_string()
        ]
    );
}

#[test]
fn a_migration_that_ends_aborted_failed_or_timed_out_starts_the_cleanup_with_its_arn_and_input() {
    let t = template();
    let rule = &t["Resources"]["ExecutionEndedRule"]["Properties"];
    let p = &rule["EventPattern"];
    let strs = |v: &Value| -> Vec<String> { list(v).iter().map(|x| s(x).to_string()).collect() };
    assert_eq!(strs(&p["source"]), ["aws.states"]);
    assert_eq!(
        strs(&p["detail-type"]),
        ["Step Functions Execution Status Change"]
    );
    assert_eq!(
        strs(&p["detail"]["status"]),
        ["ABORTED", "FAILED", "TIMED_OUT"]
    );
    let machine = list(&p["detail"]["stateMachineArn"])
        .first()
        .and_then(|v| tagged(v, "Sub"))
        .map(|v| s(v).to_string())
        .unwrap_or_default();
    assert!(
        machine.ends_with(":stateMachine:${AWS::StackName}-migration"),
        "{machine}"
    );
    assert!(
        rule["EventBusName"].is_null(),
        "Step Functions events arrive on the default bus"
    );
    let target = &rule["Targets"][0];
    assert_eq!(
        tagged(&target["Arn"], "Ref").map(s),
        Some("CleanupStateMachine")
    );
    let tr = &target["InputTransformer"];
    assert_eq!(
        s(&tr["InputPathsMap"]["executionArn"]),
        "$.detail.executionArn"
    );
    assert_eq!(s(&tr["InputPathsMap"]["status"]), "$.detail.status");
    assert_eq!(s(&tr["InputPathsMap"]["input"]), "$.detail.input");
    // Unquoted placeholders: EventBridge inserts each value as JSON, so the input (a JSON
    // document as a string) arrives as a string. Filled in, the template is the cleanup input.
    let filled = s(&tr["InputTemplate"])
        .replace(
            "<executionArn>",
            "\"arn:aws:states:r:1:execution:s-migration:e\"",
        )
        .replace("<status>", "\"ABORTED\"")
        .replace("<input>", "\"{\\\"cluster\\\": {}}\"");
    let v: serde_json::Value =
        serde_json::from_str(&filled).unwrap_or_else(|e| panic!("{filled}: {e}"));
    assert_eq!(v["status"], "ABORTED");
    assert_eq!(v["input"], "{\"cluster\": {}}");
    // Its role starts the cleanup machine and nothing else.
    let role = tagged(&target["RoleArn"], "GetAtt")
        .map(s)
        .unwrap_or_default();
    let role = role.trim_end_matches(".Arn");
    let sts = statements(&t["Resources"][role]);
    let actions: Vec<String> = sts
        .iter()
        .flat_map(|st| list(&st["Action"]))
        .map(|a| s(&a).to_string())
        .collect();
    assert_eq!(actions, ["states:StartExecution"]);
    let res = sts
        .first()
        .map(|st| list(&st["Resource"]))
        .unwrap_or_default()
        .first()
        .and_then(|v| tagged(v, "Sub"))
        .map(|v| s(v).to_string())
        .unwrap_or_default();
    assert!(
        res.ends_with(":stateMachine:${AWS::StackName}-cleanup"),
        "{res}"
    );
}

/// Actions whose only resource is `*`: AWS defines no resource-level permissions for them.
const UNSCOPED_ACTIONS: &[&str] = &[
    "autoscaling:DescribeAutoScalingGroups",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:DescribeSubnets",
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeListenerAttributes",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DescribeInstanceHealth",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
];

#[test]
fn no_role_grants_a_wildcard_action_or_a_wildcard_resource_that_could_be_narrower() {
    let t = template();
    let roles = resources(&t, "AWS::IAM::Role");
    assert!(roles.len() >= 18, "{} roles", roles.len());
    assert!(
        resources(&t, "AWS::IAM::Policy").is_empty()
            && resources(&t, "AWS::IAM::ManagedPolicy").is_empty(),
        "policies outside the roles"
    );
    for (id, role) in roles {
        assert!(
            role["Properties"]["ManagedPolicyArns"].is_null(),
            "{id}: managed policies grant more than its ports use"
        );
        let sts = statements(role);
        assert!(!sts.is_empty(), "{id} has no statements");
        for st in sts {
            let sid = s(&st["Sid"]).to_string();
            assert_eq!(s(&st["Effect"]), "Allow", "{id}/{sid}");
            assert!(
                st["NotAction"].is_null() && st["NotResource"].is_null(),
                "{id}/{sid}"
            );
            let actions: Vec<String> = list(&st["Action"])
                .iter()
                .map(|a| s(a).to_string())
                .collect();
            for a in &actions {
                let (service, name) = a
                    .split_once(':')
                    .unwrap_or_else(|| panic!("{id}/{sid}: {a:?} is not service:Action"));
                assert!(
                    !service.is_empty() && !name.is_empty() && !a.contains('*') && !a.contains('?'),
                    "{id}/{sid}: wildcard action {a:?}"
                );
            }
            let star = list(&st["Resource"]).iter().any(|r| s(r) == "*");
            if star {
                let scoped: Vec<&String> = actions
                    .iter()
                    .filter(|a| !UNSCOPED_ACTIONS.contains(&a.as_str()))
                    .collect();
                assert!(
                    scoped.is_empty(),
                    "{id}/{sid}: '*' resource for actions AWS lets a policy scope: {scoped:?}"
                );
            }
        }
    }
}

#[test]
fn the_step_functions_roles_map_to_the_kubernetes_group_that_rbac_yaml_binds() {
    let t = template();
    let group = s(&t["Parameters"]["KubernetesGroup"]["Default"]).to_string();
    assert!(
        read("infra/kubernetes/rbac.yaml").contains(&format!("kind: Group\n    name: {group}\n")),
        "rbac.yaml binds no Group {group}"
    );
    let entries: BTreeSet<String> = resources(&t, "AWS::EKS::AccessEntry")
        .into_iter()
        .map(|(id, e)| {
            let p = &e["Properties"];
            assert_eq!(
                p["KubernetesGroups"][0],
                Value::Tagged(Box::new(serde_yaml::value::TaggedValue {
                    tag: serde_yaml::value::Tag::new("Ref"),
                    value: "KubernetesGroup".into(),
                })),
                "{id}"
            );
            assert_eq!(s(&p["Type"]), "STANDARD", "{id}");
            assert!(
                p["AccessPolicies"].is_null(),
                "{id}: an EKS access policy grants more than rbac.yaml"
            );
            tagged(&p["PrincipalArn"], "GetAtt")
                .map(s)
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    for (id, f) in resources(&t, "AWS::Serverless::Function") {
        let bin = s(&f["Metadata"]["BuildProperties"]["Binary"]);
        let role = tagged(&f["Properties"]["Role"], "GetAtt")
            .map(s)
            .unwrap_or_default();
        // Only the step functions talk to the Kubernetes API.
        assert_eq!(
            entries.contains(role),
            !TRIGGERS.contains(&bin),
            "{id}: access entry for {role}"
        );
    }
}

#[test]
fn the_lock_table_is_on_demand_with_recovery_and_encryption_keyed_by_pk() {
    let t = template();
    let tables = resources(&t, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1);
    let (_, table) = &tables[0];
    let p = &table["Properties"];
    assert_eq!(s(&p["BillingMode"]), "PAY_PER_REQUEST");
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        Value::Bool(true)
    );
    assert_eq!(p["SSESpecification"]["SSEEnabled"], Value::Bool(true));
    assert_eq!(s(&p["KeySchema"][0]["AttributeName"]), "pk");
    assert_eq!(s(&p["KeySchema"][0]["KeyType"]), "HASH");
    assert_eq!(p["KeySchema"].as_sequence().map_or(0, Vec::len), 1);
    assert_eq!(s(&p["AttributeDefinitions"][0]["AttributeType"]), "S");
}

fn function_by_binary<'a>(t: &'a Value, bin: &str) -> &'a Value {
    resources(t, "AWS::Serverless::Function")
        .into_iter()
        .find(|(_, f)| s(&f["Metadata"]["BuildProperties"]["Binary"]) == bin)
        .map(|(_, f)| f)
        .unwrap_or_else(|| panic!("no function builds {bin}"))
}

#[test]
fn the_resize_api_is_a_rest_api_that_demands_sigv4_on_every_route() {
    let t = template();
    let apis = resources(&t, "AWS::Serverless::Api");
    assert_eq!(apis.len(), 1);
    let (api_id, api) = &apis[0];
    assert_eq!(
        s(&api["Properties"]["Auth"]["DefaultAuthorizer"]),
        "AWS_IAM"
    );
    assert!(
        resources(&t, "AWS::Serverless::HttpApi").is_empty(),
        "HTTP APIs are not REST"
    );
    let events = &function_by_binary(&t, "resize-api")["Properties"]["Events"];
    let mut paths = BTreeSet::new();
    for (name, e) in events.as_mapping().into_iter().flatten() {
        assert_eq!(s(&e["Type"]), "Api", "{name:?}");
        let p = &e["Properties"];
        assert_eq!(
            tagged(&p["RestApiId"], "Ref").map(s),
            Some(api_id.as_str()),
            "{name:?}"
        );
        assert!(
            p["Auth"].is_null(),
            "{name:?} overrides the API's AWS_IAM authorizer"
        );
        paths.insert(s(&p["Path"]).to_string());
    }
    for want in ["/migrations", "/migrations/{id}"] {
        assert!(paths.contains(want), "no route {want}: {paths:?}");
    }
}

#[test]
fn ami_watch_runs_on_a_schedule() {
    let t = template();
    let events = &function_by_binary(&t, "ami-watch")["Properties"]["Events"];
    let kinds: Vec<&str> = events
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(_, e)| s(&e["Type"]))
        .collect();
    assert_eq!(kinds, vec!["Schedule"]);
}

/// The custom-event rules that start executions: (sources, detail types, input path).
fn start_rules(t: &Value) -> Vec<(Vec<String>, Vec<String>, String)> {
    let machine = "MigrationStateMachine".to_string();
    resources(t, "AWS::Events::Rule")
        .into_iter()
        .filter_map(|(_, r)| {
            let p = &r["Properties"];
            let target = p["Targets"]
                .as_sequence()?
                .iter()
                .find(|x| tagged(&x["Arn"], "Ref").map(s) == Some(machine.as_str()))?;
            let strs =
                |v: &Value| -> Vec<String> { list(v).iter().map(|x| s(x).to_string()).collect() };
            Some((
                strs(&p["EventPattern"]["source"]),
                strs(&p["EventPattern"]["detail-type"]),
                s(&target["InputPath"]).to_string(),
            ))
        })
        .collect()
}

#[test]
fn ami_release_and_resize_events_start_an_execution_with_their_detail_as_input() {
    let t = template();
    let rules = start_rules(&t);
    assert!(!rules.is_empty(), "no rule starts the state machine");
    for want in ["NodeGroupAmiReleased", "ResizeRequested"] {
        assert!(
            rules.iter().any(|(src, dt, input)| src == &["ngm"]
                && dt.iter().any(|d| d == want)
                && input == "$.detail"),
            "no rule starts an execution from {want}: {rules:?}"
        );
    }
    // The operator pause emits ngm.drain.pdbBlocked on the same bus; it must start nothing.
    assert!(
        !rules
            .iter()
            .any(|(_, dt, _)| dt.iter().any(|d| d.starts_with("ngm.drain"))),
        "{rules:?}"
    );
}

fn json(rel: &str) -> serde_json::Value {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"))
}

#[test]
fn every_example_event_matches_a_start_rule_and_carries_a_valid_request() {
    let rules = start_rules(&template());
    for (file, detail_type) in [
        (
            "infra/events/ami-released.entries.json",
            "NodeGroupAmiReleased",
        ),
        (
            "infra/events/resize-requested.entries.json",
            "ResizeRequested",
        ),
    ] {
        let entries = json(file);
        let e = &entries[0];
        assert_eq!(e["DetailType"], detail_type, "{file}");
        let source = e["Source"].as_str().unwrap_or_default();
        assert!(
            rules
                .iter()
                .any(|(src, dt, _)| src.iter().any(|x| x == source)
                    && dt.iter().any(|x| x == detail_type)),
            "{file}: no rule matches {source}/{detail_type}"
        );
        // PutEvents takes the detail as a JSON string; it becomes the execution input.
        let detail = e["Detail"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: Detail is not a string"));
        if let Err(errors) = ngm_core::request::check_request(detail) {
            panic!("{file}: the detail is not a valid request: {errors:?}");
        }
    }
    let post = json("infra/events/api-post-migrations.json");
    assert_eq!(post["httpMethod"], "POST");
    assert_eq!(post["resource"], "/migrations");
    let body = post["body"].as_str().unwrap_or_default();
    if let Err(errors) = ngm_core::request::check_request(body) {
        panic!("api-post-migrations.json: the body is not a valid request: {errors:?}");
    }
    let get = json("infra/events/api-get-migration.json");
    assert_eq!(get["httpMethod"], "GET");
    assert_eq!(get["resource"], "/migrations/{id}");
    assert!(get["pathParameters"]["id"].is_string());
    let tick = json("infra/events/ami-watch-tick.json");
    assert_eq!(tick["detail-type"], "Scheduled Event");
}

#[test]
fn iam_md_lists_every_action_of_every_function_role() {
    let t = template();
    let doc = read("infra/iam.md");
    for (id, f) in resources(&t, "AWS::Serverless::Function") {
        let bin = s(&f["Metadata"]["BuildProperties"]["Binary"]);
        let heading = format!("\n### {bin}\n");
        let section = doc
            .split_once(&heading)
            .map(|(_, rest)| rest.split("\n### ").next().unwrap_or_default())
            .unwrap_or_else(|| panic!("infra/iam.md has no section {heading:?}"));
        let role = tagged(&f["Properties"]["Role"], "GetAtt")
            .map(s)
            .unwrap_or_default();
        let role = role.trim_end_matches(".Arn");
        for st in statements(&t["Resources"][role]) {
            for a in list(&st["Action"]) {
                assert!(
                    section.contains(&format!("`{}`", s(&a))),
                    "infra/iam.md, {bin} ({id}): `{}` is granted but not listed",
                    s(&a)
                );
            }
        }
    }
}
