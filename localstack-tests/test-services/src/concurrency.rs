//! Scopes, map and parallel.

use crate::effects::*;
use lambda_handler_sdk::prelude::*;
use serde::Deserialize;
use std::time::Duration;

#[derive(Deserialize)]
pub(crate) struct MapInput {
    pub(crate) run: String,
    pub(crate) items: u32,
    pub(crate) max_concurrency: usize,
    /// Every tenth item (from 3) sleeps this long first (suspending when long).
    pub(crate) sleep_ms: u64,
    /// Exit the process when this item starts, the first time only.
    #[serde(default)]
    pub(crate) crash_at: Option<u32>,
}

/// Every item runs one step that counts its side effect and returns the count (1 unless the
/// step ran again because its first run was not recorded); every tenth item (from 3) sleeps
/// first, every seventh (from 5) fails terminally after its step.
pub(crate) async fn map_items(
    ctx: Context,
    input: MapInput,
) -> Result<BatchResult<u64>, HandlerError> {
    let run = input.run.clone();
    let crash_at = input.crash_at;
    let sleep = Duration::from_millis(input.sleep_ms);
    let items: Vec<u32> = (0..input.items).collect();
    Ok(ctx
        .map("items", items, |ctx, i| {
            let run = run.clone();
            async move {
                if crash_at == Some(i) && first_time(&run, "map-crash").await? {
                    eprintln!("test-services: crashing on purpose as item {i} starts");
                    std::process::exit(21);
                }
                if i % 10 == 3 {
                    ctx.sleep(sleep).await?;
                }
                let name = format!("item-{i}");
                let runs: u64 = ctx.run("work", || count_effect(&run, &name)).await?;
                if i % 7 == 5 {
                    return Err(TerminalError::new(format!("item {i} ran {runs}"))
                        .with_code(422)
                        .into());
                }
                Ok(runs)
            }
        })
        .max_concurrency(input.max_concurrency)
        .await?)
}

/// A parallel whose second branch holds a parallel whose second branch sleeps (suspends).
pub(crate) async fn nested_parallel(
    ctx: Context,
    input: RunOnly,
) -> Result<Vec<Vec<String>>, HandlerError> {
    let run = input.run;
    let outer = ctx
        .parallel("outer")
        .branch(|ctx| {
            let run = run.clone();
            async move {
                let a: String = ctx
                    .run("a", || async {
                        count_effect(&run, "a").await?;
                        Ok("a".to_owned())
                    })
                    .await?;
                Ok(vec![a])
            }
        })
        .branch(|ctx| {
            let run = run.clone();
            async move {
                let inner = ctx
                    .parallel("inner")
                    .branch(|ctx| {
                        let run = run.clone();
                        async move {
                            Ok(ctx
                                .run("b", || async {
                                    count_effect(&run, "b").await?;
                                    Ok("b".to_owned())
                                })
                                .await?)
                        }
                    })
                    .branch(|ctx| {
                        let run = run.clone();
                        async move {
                            ctx.sleep(Duration::from_millis(2500)).await?;
                            Ok(ctx
                                .run("c", || async {
                                    count_effect(&run, "c").await?;
                                    Ok("c".to_owned())
                                })
                                .await?)
                        }
                    })
                    .await?;
                Ok(inner.into_values()?)
            }
        })
        .await?;
    Ok(outer.into_values()?)
}
