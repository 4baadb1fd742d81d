//! `durable new <name>`: a new handler crate from the template in `cli/template`: a handler
//! with unit tests (the test kit's in-process runner), integration tests against the local
//! environment, a CDK stack and a README, that builds and passes its tests as generated.

use crate::CliError;
use durable_protocol::ServiceName;
use std::path::{Path, PathBuf};

/// The template's files: where each goes in the new crate, and its text.
const FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../template/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("../template/lib.rs.tmpl")),
    ("src/main.rs", include_str!("../template/main.rs.tmpl")),
    (
        "tests/deployed.rs",
        include_str!("../template/deployed.rs.tmpl"),
    ),
    ("cdk/stack.ts", include_str!("../template/stack.ts.tmpl")),
    ("README.md", include_str!("../template/README.md.tmpl")),
    (".gitignore", "/target\n"),
];

/// What to make and where.
pub struct NewArgs<'a> {
    /// The crate's name (also its service's and binary's).
    pub name: &'a str,
    /// Where to make it (default: `./<name>`).
    pub path: Option<&'a Path>,
    /// The engine's checkout (the SDK, the test kit, the constructs, the tools).
    pub engine: Option<&'a Path>,
}

/// Writes the new crate; returns its folder. Refuses to write into a folder that exists.
pub fn new_crate(args: &NewArgs<'_>) -> Result<PathBuf, CliError> {
    check_name(args.name)?;
    let engine = match args.engine {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")),
    };
    let engine = engine.canonicalize().map_err(|e| {
        CliError::Usage(format!(
            "the engine's checkout {} is not there ({e}): pass --engine <checkout>",
            engine.display()
        ))
    })?;
    if !engine.join("lambda-handler-sdk/Cargo.toml").is_file() {
        return Err(CliError::Usage(format!(
            "{} is not a checkout of the engine (no lambda-handler-sdk): pass --engine <checkout>",
            engine.display()
        )));
    }
    let dir = args
        .path
        .map_or_else(|| PathBuf::from(args.name), Path::to_path_buf);
    if dir.exists() {
        return Err(CliError::Usage(format!(
            "{} exists already: pick another name or --path",
            dir.display()
        )));
    }
    let stack: String = args
        .name
        .split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, &e))?;
    let dir = dir.canonicalize().map_err(|e| io(&dir, &e))?;
    let bin = engine.join("target/debug");
    let subs = [
        ("{{name}}", args.name.to_owned()),
        ("{{crate}}", args.name.replace('-', "_")),
        ("{{service}}", args.name.to_owned()),
        ("{{stack}}", stack),
        ("{{sdk}}", path_text(&engine.join("lambda-handler-sdk"))),
        ("{{testing}}", path_text(&engine.join("testing"))),
        ("{{infra}}", path_text(&engine.join("infra-cdk"))),
        ("{{manifest}}", path_text(&dir.join("Cargo.toml"))),
        ("{{durable_local}}", path_text(&bin.join("durable-local"))),
        ("{{durable}}", path_text(&bin.join("durable"))),
    ];
    // The versions the engine is built and tested with (cargo trims what this crate does not use).
    if let Ok(lock) = std::fs::read(engine.join("Cargo.lock")) {
        std::fs::write(dir.join("Cargo.lock"), lock).map_err(|e| io(&dir, &e))?;
    }
    for (file, template) in FILES {
        let text = subs
            .iter()
            .fold((*template).to_owned(), |text, (from, to)| {
                text.replace(from, to)
            });
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, &e))?;
        }
        std::fs::write(&path, text).map_err(|e| io(&path, &e))?;
    }
    Ok(dir)
}

/// A crate name that is also a service name: a letter first, then letters, digits, `-`, `_`.
fn check_name(name: &str) -> Result<(), CliError> {
    let crate_like = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !crate_like {
        return Err(CliError::Usage(format!(
            "{name:?} is not a crate name: a lowercase letter, then lowercase letters, digits, - or _"
        )));
    }
    ServiceName::new(name)
        .map(drop)
        .map_err(|e| CliError::Usage(format!("{name:?} cannot name a service: {e}")))
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

fn io(path: &Path, e: &std::io::Error) -> CliError {
    CliError::Usage(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_suit_a_crate_and_a_service() {
        assert!(check_name("hello").is_ok());
        assert!(check_name("order-flow_2").is_ok());
        for bad in ["", "Hello", "2fast", "with space", "dots.no", "ünï"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_crate_is_written_with_every_placeholder_filled() {
        let root = std::env::temp_dir().join(format!("durable-new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = new_crate(&NewArgs {
            name: "shop-orders",
            path: Some(&root),
            engine: None,
        })
        .unwrap();
        for (file, _) in FILES {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            assert!(!text.contains("{{"), "{file} keeps a placeholder");
        }
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"shop-orders\""));
        assert!(manifest.contains("/lambda-handler-sdk\" }"), "{manifest}");
        let main = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();
        assert!(main.contains("shop_orders::endpoint()"));
        let stack = std::fs::read_to_string(dir.join("cdk/stack.ts")).unwrap();
        assert!(stack.contains("'ShopOrders'"));
        let again = new_crate(&NewArgs {
            name: "shop-orders",
            path: Some(&root),
            engine: None,
        });
        assert!(matches!(again, Err(CliError::Usage(m)) if m.contains("exists")));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
