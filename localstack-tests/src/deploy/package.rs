//! Packaging a Rust binary as a Lambda `provided.al2023` zip: stripped, named `bootstrap`, 0755.

use crate::{Result, ToolError};
use std::io::Write;
use std::path::Path;
use std::process::Command;

/// The zip bytes for `binary`. Debug builds with the AWS SDK are over Lambda's 50 MB upload
/// limit unless stripped, so the binary is stripped (into a temporary copy) first.
pub fn package(binary: &Path) -> Result<Vec<u8>> {
    if !binary.exists() {
        return Err(ToolError::Message(format!(
            "{} does not exist; build it first (cargo build --bins)",
            binary.display()
        )));
    }
    let dir =
        std::env::temp_dir().join(format!("durable-package-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let stripped = dir.join("bootstrap");
    let status = Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&stripped)
        .arg(binary)
        .status()
        .map_err(|e| {
            ToolError::Message(format!("could not run `strip` (install binutils): {e}"))
        })?;
    if !status.success() {
        return Err(ToolError::Message(format!(
            "strip {} failed with {status}",
            binary.display()
        )));
    }
    let bytes = std::fs::read(&stripped).map_err(|e| io(&stripped, e))?;
    let _ = std::fs::remove_dir_all(&dir);

    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    zip.start_file("bootstrap", options)
        .map_err(|e| ToolError::Message(format!("zip: {e}")))?;
    zip.write_all(&bytes).map_err(|e| io(binary, e))?;
    let cursor = zip
        .finish()
        .map_err(|e| ToolError::Message(format!("zip: {e}")))?;
    Ok(cursor.into_inner())
}

fn io(path: &Path, source: std::io::Error) -> ToolError {
    ToolError::Io {
        context: path.display().to_string(),
        source,
    }
}
