//! Reading what the engine stored: an invocation's metadata and journal, and the test Lambda's
//! side-effect counters.

use crate::deploy::clients::Clients;
use crate::{Result, ToolError};
use aws_sdk_dynamodb::types::AttributeValue;
use durable_protocol::{InvocationId, JournalEntry};
use durable_store::journal::entry_from_item;
use durable_store::journal::tail_from_meta;
use durable_store::keys;
use durable_store::Item;

/// An invocation's items as stored.
#[derive(Debug, Clone)]
pub struct Stored {
    pub meta: Option<Item>,
    /// The journal in index order: the entries' items, and the last step's entry if it was
    /// recorded with the outcome on the metadata item (see `tail`).
    pub journal: Vec<JournalEntry>,
    /// The index of the entry recorded with the outcome rather than as an item of its own.
    pub tail: Option<u32>,
    /// Every item of the invocation (meta, journal, anything else under its partition key).
    pub item_count: usize,
}

/// Reads every item of invocation `id`.
pub async fn invocation(clients: &Clients, table: &str, id: &str) -> Result<Stored> {
    let items = items(clients, table, id).await?;
    let mut meta = None;
    let mut journal = Vec::new();
    for item in &items {
        if keys::id_of_meta(item).is_some() {
            meta = Some(item.clone());
            continue;
        }
        match item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
        {
            Some(sk) if sk.starts_with(keys::JOURNAL_SK_PREFIX) => {
                journal.push(entry_from_item(item).map_err(|e| ToolError::Message(e.to_string()))?);
            }
            _ => {}
        }
    }
    let tail = match &meta {
        Some(item) => tail_from_meta(item).map_err(|e| ToolError::Message(e.to_string()))?,
        None => None,
    };
    let tail_index = tail.as_ref().map(|t| t.index);
    journal.extend(tail);
    journal.sort_by_key(|e| e.index);
    Ok(Stored {
        meta,
        journal,
        tail: tail_index,
        item_count: items.len(),
    })
}

/// Every item of invocation `id`: its partition's (journal, and the metadata item of an id
/// that is not dated) and a dated id's metadata item.
pub async fn items(clients: &Clients, table: &str, id: &str) -> Result<Vec<Item>> {
    let id = InvocationId::parse(id).map_err(|e| ToolError::Message(e.to_string()))?;
    let mut items = query_all(clients, table, &keys::invocation_pk(&id)).await?;
    if id.bucket().is_some() {
        let out = clients
            .dynamo
            .get_item()
            .table_name(table)
            .set_key(Some(keys::meta_key_item(&id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ToolError::aws("GetItem", e))?;
        items.extend(out.item);
    }
    Ok(items)
}

/// Every item with partition key `pk` (strongly consistent).
pub async fn query_all(clients: &Clients, table: &str, pk: &str) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = clients
            .dynamo
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| ToolError::aws("Query", e))?;
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(items),
        }
    }
}

/// How often the test Lambda's step `step` really ran its side effect in test run `run`.
pub async fn effect_count(clients: &Clients, table: &str, run: &str, step: &str) -> Result<u64> {
    let out = clients
        .dynamo
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("test#{run}")))
        .key("sk", AttributeValue::S(format!("effect#{step}")))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| ToolError::aws("GetItem", e))?;
    Ok(out
        .item
        .and_then(|i| i.get("count").and_then(|c| c.as_n().ok()?.parse().ok()))
        .unwrap_or(0))
}

/// How many side-effect counters of the test Lambda in `table` are over `limit`: steps whose
/// closure ran more often than that (a scan: for tests on a table of their own).
pub async fn effects_over(clients: &Clients, table: &str, limit: u64) -> Result<usize> {
    let mut over = 0;
    let mut start = None;
    loop {
        let out = clients
            .dynamo
            .scan()
            .table_name(table)
            .filter_expression("begins_with(sk, :e) AND #c > :limit")
            .expression_attribute_names("#c", "count")
            .expression_attribute_values(":e", AttributeValue::S("effect#".into()))
            .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| ToolError::aws("Scan", e))?;
        over += out.items().len();
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(over),
        }
    }
}

/// A readable attribute value (strings plain, numbers as digits, the rest debug-printed).
pub fn show(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(s) => s.clone(),
        AttributeValue::N(n) => n.clone(),
        other => format!("{other:?}"),
    }
}

/// One Lambda invocation as the local executor recorded it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LambdaInvocation {
    pub function: String,
    pub qualifier: String,
    pub is_error: bool,
    pub error_type: Option<String>,
    pub payload_head: String,
}

/// The Lambda invocations of `function` whose payload starts with text containing `needle`
/// (e.g. an invocation id), as recorded by the LocalStack host executor, independently of the
/// code under test.
pub fn lambda_invocations(function: &str, needle: &str) -> Result<Vec<LambdaInvocation>> {
    let path = crate::deploy::Deployment::default_path()
        .parent()
        .expect("deployment file has a folder")
        .join("logs/lambda/invocations.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| ToolError::Io {
        context: path.display().to_string(),
        source: e,
    })?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<LambdaInvocation>(l).ok())
        .filter(|i| i.function == function && i.payload_head.contains(needle))
        .collect())
}

/// The id of awakeable `index` of invocation `id`, made the way its handler makes it: with the
/// orchestrator's signing key, which an operator with access to the table can read (a handler
/// cannot). For tools and tests that find an awakeable in the journal rather than being told.
pub async fn awakeable_id(
    clients: &Clients,
    table: &str,
    id: &InvocationId,
    index: u32,
) -> Result<durable_protocol::AwakeableId> {
    let signing = durable_store::signing::load_or_create(&clients.dynamo, table)
        .await
        .map_err(|e| ToolError::Message(format!("reading the signing key: {e}")))?;
    Ok(durable_protocol::AwakeableId {
        invocation: id.clone(),
        index,
        tag: signing
            .invocation_key(id)
            .tag(durable_protocol::auth::Purpose::Awakeable, index),
    })
}

/// The busy minutes the sweep recorded for `service` between minutes `from` and `to`.
pub async fn busy_minutes(
    clients: &Clients,
    table: &str,
    service: &str,
    from: u32,
    to: u32,
) -> Result<Vec<(u32, durable_store::listing::Busy)>> {
    let service = durable_protocol::ServiceName::new(service)
        .map_err(|e| ToolError::Message(e.to_string()))?;
    let store = durable_store::invocations::InvocationStore::new(clients.dynamo.clone(), table);
    let found = store
        .busy_minutes(&service, from, to)
        .await
        .map_err(|e| ToolError::Message(format!("reading busy minutes: {e}")))?;
    Ok(found.into_iter().collect())
}

/// The lines of the log files of `function`'s execution environments (as the LocalStack host
/// executor writes them: one file per environment) that contain every one of `needles`.
pub fn lambda_log_lines(function: &str, needles: &[&str]) -> Result<Vec<String>> {
    let dir = crate::deploy::Deployment::default_path()
        .parent()
        .expect("deployment file has a folder")
        .join("logs/lambda");
    let entries = std::fs::read_dir(&dir).map_err(|e| ToolError::Io {
        context: dir.display().to_string(),
        source: e,
    })?;
    let prefix = format!("{function}-");
    let mut lines = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&prefix) || !name.ends_with(".log") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        lines.extend(
            text.lines()
                .filter(|l| needles.iter().all(|n| l.contains(n)))
                .map(str::to_owned),
        );
    }
    Ok(lines)
}
