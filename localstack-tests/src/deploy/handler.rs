//! Deploying a user's own handler Lambda into a recorded deployment: build it (from a crate) or
//! take its binary, create or update the function, publish a version behind the alias `live`
//! and register it, so that new invocations run the new version while in-flight ones stay on
//! the version they started on.

use crate::deploy::clients::Clients;
use crate::deploy::package::package;
use crate::deploy::{publish_behind_alias, register_with, upsert_function, Deployment};
use crate::{Result, ToolError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where a handler's binary comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerSource {
    /// A built executable (a host build: the local executor runs it as a process).
    Binary(PathBuf),
    /// A crate (its folder or its `Cargo.toml`), built here with `cargo build`; `bin` picks one
    /// binary when the crate has several.
    Crate {
        manifest: PathBuf,
        bin: Option<String>,
    },
}

impl HandlerSource {
    /// A crate when `path` is a folder with a `Cargo.toml` or a `Cargo.toml` itself, else a
    /// binary.
    pub fn from_path(path: &Path, bin: Option<String>) -> Self {
        if path.is_dir() {
            return HandlerSource::Crate {
                manifest: path.join("Cargo.toml"),
                bin,
            };
        }
        if path.file_name().is_some_and(|n| n == "Cargo.toml") {
            return HandlerSource::Crate {
                manifest: path.to_path_buf(),
                bin,
            };
        }
        HandlerSource::Binary(path.to_path_buf())
    }
}

/// A handler Lambda of the user's to deploy.
#[derive(Debug, Clone)]
pub struct OwnHandler {
    /// The function name's suffix (`<prefix>-<name>`); also its key in `deployment.json`.
    pub name: String,
    pub source: HandlerSource,
    /// Environment variables of the function (a change publishes a new version too).
    pub env: BTreeMap<String, String>,
    pub timeout_secs: i32,
    /// How long its services keep finished invocations (default: the orchestrator's).
    pub retention_secs: Option<u64>,
}

/// What a handler deploy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedHandler {
    /// The function's name.
    pub function: String,
    /// The alias `live`'s ARN (what was registered).
    pub alias_arn: String,
    /// Each service it serves -> the version ARN it is pinned to now.
    pub services: BTreeMap<String, String>,
}

/// Parses `NAME=PATH` or `PATH` (the name is then the binary's or the crate folder's name).
pub fn parse_handler_arg(arg: &str) -> Result<(String, PathBuf)> {
    let (name, path) = match arg.split_once('=') {
        Some((name, path)) => (Some(name.to_owned()), PathBuf::from(path)),
        None => (None, PathBuf::from(arg)),
    };
    let name = match name {
        Some(n) => n,
        None => default_name(&path).ok_or_else(|| {
            ToolError::Message(format!(
                "cannot name a function after {arg:?}: use NAME=PATH"
            ))
        })?,
    };
    check_name(&name)?;
    Ok((name, path))
}

/// The crate folder's name for a manifest, else the file's or folder's own (`.` resolved).
fn default_name(path: &Path) -> Option<String> {
    let named = if path.file_name().is_some_and(|n| n == "Cargo.toml") {
        path.parent()?.to_path_buf()
    } else {
        path.to_path_buf()
    };
    let named = match named.file_name() {
        Some(_) => named,
        None => named.canonicalize().ok()?,
    };
    named
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
}

/// A function name suffix: letters, digits, `-` and `_` (Lambda's rule), at most 40 characters
/// so that the prefix fits too.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ToolError::Message(format!(
            "{name:?} is not a function name (1 to 40 letters, digits, - or _)"
        )))
    }
}

/// The executable `source` names, building it first if it is a crate.
pub fn binary_of(source: &HandlerSource) -> Result<PathBuf> {
    match source {
        HandlerSource::Binary(path) => {
            if path.is_file() {
                Ok(path.clone())
            } else {
                Err(ToolError::Message(format!(
                    "{} is not a file: pass a built binary or a crate folder",
                    path.display()
                )))
            }
        }
        HandlerSource::Crate { manifest, bin } => build_crate(manifest, bin.as_deref()),
    }
}

/// `cargo build` of the crate's binaries (a host debug build, as the local executor runs it);
/// returns the one executable built, or the one named `bin`.
fn build_crate(manifest: &Path, bin: Option<&str>) -> Result<PathBuf> {
    if !manifest.is_file() {
        return Err(ToolError::Message(format!(
            "{} does not exist: pass a crate folder (with a Cargo.toml) or a built binary",
            manifest.display()
        )));
    }
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--message-format=json-render-diagnostics");
    match bin {
        Some(b) => cmd.args(["--bin", b]),
        None => cmd.arg("--bins"),
    };
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| ToolError::Message(format!("could not run cargo: {e}")))?;
    if !out.status.success() {
        return Err(ToolError::Message(format!(
            "cargo build --manifest-path {} failed ({})",
            manifest.display(),
            out.status
        )));
    }
    let executables: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .collect();
    match executables.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(ToolError::Message(format!(
            "{} builds no binary",
            manifest.display()
        ))),
        many => Err(ToolError::Message(format!(
            "{} builds {} binaries ({}): pick one with --bin",
            manifest.display(),
            many.len(),
            many.iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Deploys `handler` into the deployment recorded at `path` and registers it; records the
/// function and its services there.
pub async fn deploy_handler(
    clients: &Clients,
    path: &Path,
    handler: &OwnHandler,
) -> Result<DeployedHandler> {
    let mut deployment = Deployment::load(path)?;
    let binary = binary_of(&handler.source)?;
    let zip = package(&binary)?;
    let function = format!("{}-{}", deployment.prefix, handler.name);
    let mut env = BTreeMap::from([("RUST_LOG".to_owned(), "info".to_owned())]);
    env.extend(handler.env.clone());
    upsert_function(clients, &function, zip, env, handler.timeout_secs).await?;
    let alias_arn = publish_behind_alias(clients, &function).await?;
    let answer = register_with(
        clients,
        &deployment.orchestrator_function,
        &alias_arn,
        handler.retention_secs,
    )
    .await?;
    let services: BTreeMap<String, String> = answer["registered"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|reg| {
            Some((
                reg["service"].as_str()?.to_owned(),
                reg["function_arn"].as_str()?.to_owned(),
            ))
        })
        .collect();
    if services.is_empty() {
        return Err(ToolError::Message(format!(
            "the orchestrator registered no service of {function}: {answer}"
        )));
    }
    deployment
        .handlers
        .insert(handler.name.clone(), alias_arn.clone());
    deployment.services.extend(services.clone());
    deployment.save(path)?;
    Ok(DeployedHandler {
        function,
        alias_arn,
        services,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_args_name_the_function() {
        let (name, path) = parse_handler_arg("hello=../hello").unwrap();
        assert_eq!((name.as_str(), path), ("hello", PathBuf::from("../hello")));
        let (name, _) = parse_handler_arg("target/debug/my-service").unwrap();
        assert_eq!(name, "my-service");
        let (name, _) = parse_handler_arg("/tmp/shop/Cargo.toml").unwrap();
        assert_eq!(name, "shop");
        assert!(parse_handler_arg("bad name=x").is_err());
        assert!(parse_handler_arg(&format!("{}=x", "a".repeat(41))).is_err());
    }

    #[test]
    fn folders_and_manifests_are_crates_anything_else_a_binary() {
        let dir = std::env::temp_dir();
        assert!(matches!(
            HandlerSource::from_path(&dir, None),
            HandlerSource::Crate { .. }
        ));
        assert_eq!(
            HandlerSource::from_path(Path::new("x/Cargo.toml"), None),
            HandlerSource::Crate {
                manifest: PathBuf::from("x/Cargo.toml"),
                bin: None
            }
        );
        assert_eq!(
            HandlerSource::from_path(Path::new("target/debug/x"), None),
            HandlerSource::Binary(PathBuf::from("target/debug/x"))
        );
    }

    #[test]
    fn a_missing_binary_is_a_clear_error() {
        let err = binary_of(&HandlerSource::Binary("/nonexistent/x".into())).unwrap_err();
        assert!(err.to_string().contains("not a file"), "{err}");
    }
}
