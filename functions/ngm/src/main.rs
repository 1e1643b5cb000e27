//! `ngm`: the operator's command line. `ngm schema` prints the MigrationRequest JSON Schema;
//! `ngm validate FILE|-` checks a request and prints every problem with its field path;
//! `ngm local run` runs a whole migration on the cluster twin.

use std::io::Read;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod cleanup;
mod local;
mod ops;

#[derive(Debug, Parser)]
#[command(
    name = "ngm",
    version,
    about = "Zero-downtime EKS node-group migrations"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the JSON Schema of a MigrationRequest.
    Schema,
    /// Check a MigrationRequest (a file, or - for standard input): prints `ok`, or every
    /// problem on its own line with its field path and exits 1.
    Validate {
        /// The request file, or `-` for standard input.
        file: String,
    },
    /// Validate a request locally, then start it on the state machine (StartExecution).
    Start {
        /// The request file, or `-` for standard input.
        file: String,
        #[command(flatten)]
        machine: ops::MachineArg,
        /// The execution name (default: cli-<cluster>-<group>-<unix time>).
        #[arg(long)]
        name: Option<String>,
    },
    /// Print an execution's status (by name, with the state machine, or by ARN).
    Status {
        id: String,
        #[command(flatten)]
        machine: ops::MachineArg,
    },
    /// Answer a PDB-blocked drain (SendTaskSuccess on the task token it waits on): `retry`
    /// sets a new drain deadline and evicts again; `force` deletes the blocked pod (or
    /// `--pod`) bypassing its PodDisruptionBudget, then goes on; `rollback` rolls back.
    Approve {
        /// The execution (ARN, or name with --state-machine), or the task token from the
        /// `ngm.drain.pdbBlocked` event.
        execution: String,
        #[arg(long, value_enum, default_value = "retry")]
        action: ActionArg,
        /// `namespace/name` of the pod to force (default: the blocked pod).
        #[arg(long)]
        pod: Option<String>,
        /// Who answers, for the record (default: $USER).
        #[arg(long)]
        by: Option<String>,
        #[command(flatten)]
        machine: ops::MachineArg,
    },
    /// Roll a PDB-blocked migration back (SendTaskFailure on its task token).
    Abort {
        token: String,
        #[arg(long, default_value = "aborted by an operator")]
        reason: String,
    },
    /// Clean up after a migration that ended without doing it (stopped, failed, timed out):
    /// starts the cleanup state machine for it. Refuses while the execution is RUNNING.
    Cleanup {
        /// The migration execution's ARN.
        execution_arn: String,
        /// The cleanup state machine's ARN (default: $NGM_CLEANUP_STATE_MACHINE_ARN, else the
        /// stack's `<stack>-cleanup` next to the execution's `<stack>-migration`).
        #[arg(long = "cleanup-machine")]
        cleanup_machine: Option<String>,
    },
    /// Delete a cluster's migration lock, only when its holder's execution has ended; says
    /// which execution holds it otherwise.
    Unlock {
        /// The cluster's name (in the configured region) or ARN.
        cluster: String,
        /// The lock table (default: $NGM_LOCK_TABLE).
        #[arg(long = "lock-table")]
        lock_table: Option<String>,
    },
    /// Run ngm and what its users do today (the EKS managed update, a drain-based rotation,
    /// a replacement), each on a fresh cluster twin of the same scenario, and print their
    /// figures side by side against the critical path.
    Bench(bench::BenchArgs),
    /// Runs on this machine, against the cluster twin.
    Local {
        #[command(subcommand)]
        command: local::LocalCommand,
    },
}

/// `ngm approve --action`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ActionArg {
    Retry,
    Force,
    Rollback,
}

fn answer(
    action: ActionArg,
    pod: Option<String>,
    by: Option<String>,
) -> Result<ngm_core::state::OperatorAnswer, String> {
    use ngm_core::state::{OperatorAction, OperatorAnswer};
    let action = match action {
        ActionArg::Retry => OperatorAction::Retry,
        ActionArg::Force => OperatorAction::Force,
        ActionArg::Rollback => OperatorAction::Rollback,
    };
    if let Some(p) = &pod {
        if action != OperatorAction::Force {
            return Err("--pod goes with --action force".into());
        }
        let ok = p
            .split_once('/')
            .is_some_and(|(ns, n)| !ns.is_empty() && !n.is_empty() && !n.contains('/'));
        if !ok {
            return Err(format!("--pod {p:?} is not namespace/name"));
        }
    }
    Ok(OperatorAnswer {
        action,
        pod,
        by: by.or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty())),
    })
}

fn read_input(file: &str) -> Result<String, String> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))
    }
}

/// Writes `text` and a newline to standard output. A reader that has gone (`ngm schema | head`)
/// ends the command quietly with success, as it took what it wanted; any other write error is
/// said on standard error, with exit code 2. `println!` would panic on either.
pub(crate) fn emit(text: &str) -> Result<(), ExitCode> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("ngm: cannot write to standard output: {e}");
            Err(ExitCode::from(2))
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Local { command } => local::main(command),
        Command::Bench(args) => bench::main(args),
        Command::Start {
            file,
            machine,
            name,
        } => match read_input(&file) {
            Ok(request_json) => ops::main(ops::Op::Start {
                request_json,
                machine,
                name,
            }),
            Err(e) => {
                eprintln!("ngm: {e}");
                ExitCode::from(2)
            }
        },
        Command::Status { id, machine } => ops::main(ops::Op::Status { id, machine }),
        Command::Approve {
            execution,
            action,
            pod,
            by,
            machine,
        } => match answer(action, pod, by) {
            Ok(answer) => ops::main(ops::Op::Approve {
                target: execution,
                machine,
                answer,
            }),
            Err(e) => {
                eprintln!("ngm: {e}");
                ExitCode::from(2)
            }
        },
        Command::Cleanup {
            execution_arn,
            cleanup_machine,
        } => ops::main(ops::Op::Cleanup {
            execution_arn,
            cleanup_machine,
        }),
        Command::Unlock {
            cluster,
            lock_table,
        } => ops::main(ops::Op::Unlock {
            cluster,
            lock_table,
        }),
        Command::Abort { token, reason } => ops::main(ops::Op::Abort { token, reason }),
        Command::Schema => {
            let schema = ngm_core::request::request_schema();
            match serde_json::to_string_pretty(&schema) {
                Ok(s) => emit(&s).err().unwrap_or(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("ngm: cannot print the schema: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Validate { file } => {
            let json = match read_input(&file) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("ngm: {e}");
                    return ExitCode::from(2);
                }
            };
            match ngm_core::request::check_request(&json) {
                Ok(_) => emit("ok").err().unwrap_or(ExitCode::SUCCESS),
                Err(problems) => {
                    // Rejected is the answer whether or not anyone reads the list to its end.
                    for p in problems {
                        if emit(&p.to_string()).is_err() {
                            break;
                        }
                    }
                    ExitCode::from(1)
                }
            }
        }
    }
}
