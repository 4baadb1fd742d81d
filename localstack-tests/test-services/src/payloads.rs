//! Large inputs, step results and outputs (S3 offload).

use crate::effects::*;
use lambda_handler_sdk::prelude::*;
use serde::Deserialize;

/// `size` bytes of printable text determined by `seed` (the tests generate the same).
pub(crate) fn content(seed: &str, size: usize) -> String {
    let mut state = seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (0..size)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            char::from(b'a' + ((state >> 33) % 26) as u8)
        })
        .collect()
}

pub(crate) async fn echo(
    _ctx: Context,
    input: serde_json::Value,
) -> Result<serde_json::Value, HandlerError> {
    Ok(input)
}

#[derive(Deserialize)]
pub(crate) struct BigInput {
    pub(crate) run: String,
    pub(crate) size: usize,
    #[serde(default)]
    pub(crate) crash: bool,
    /// Wait on an awakeable after the step (so tests can look at the journal meanwhile).
    #[serde(default)]
    pub(crate) hold: bool,
}

/// One step returns `size` bytes; the handler answers the text's length and FNV-1a hash.
pub(crate) async fn big_step(
    ctx: Context,
    input: BigInput,
) -> Result<serde_json::Value, HandlerError> {
    let text: String = ctx
        .run("big", || async {
            count_effect(&input.run, "big").await?;
            Ok(content(&input.run, input.size))
        })
        .await?;
    if input.crash {
        crash_once(&input.run, "big-crash", 21, "after a large step").await?;
    }
    if input.hold {
        let (_id, release) = ctx.awakeable::<serde_json::Value>().await?;
        release.await?;
    }
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    Ok(serde_json::json!({"len": text.len(), "fnv": format!("{hash:016x}")}))
}

/// Answers `size` bytes of text.
pub(crate) async fn big_output(_ctx: Context, input: BigInput) -> Result<String, HandlerError> {
    Ok(content(&input.run, input.size))
}

/// Takes raw bytes and answers them reversed, with a two-byte header (as binary as it gets).
pub(crate) async fn reverse_bytes(ctx: Context, input: Bytes) -> Result<Bytes, HandlerError> {
    let reversed: Bytes = ctx
        .run("reverse", || async move {
            let mut out = vec![0xff, 0x00];
            out.extend(input.0.iter().rev());
            Ok(Bytes(out))
        })
        .await?;
    Ok(reversed)
}
