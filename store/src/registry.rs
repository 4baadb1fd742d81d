//! The service registry: which handler Lambda (pinned to a version) serves which service.

use crate::attrs::get_n;
use crate::attrs::get_s;
use crate::attrs::n;
use crate::attrs::s;
use crate::keys;
use crate::Item;
use crate::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use durable_protocol::clock::now_millis;
use durable_protocol::{HandlerKind, HandlerName, ServiceKind, ServiceName};
use std::collections::BTreeMap;

/// A service as registered.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub service: ServiceName,
    pub kind: ServiceKind,
    /// The qualified ARN of the version that new invocations are pinned to.
    pub function_arn: String,
    pub handlers: Vec<HandlerName>,
    /// The kinds of the handlers of an object or workflow.
    pub kinds: BTreeMap<HandlerName, HandlerKind>,
    /// How long its finished invocations are kept, when not the orchestrator's default.
    pub retention: Option<std::time::Duration>,
}

impl Registration {
    /// Whether the service has a handler of that name.
    pub fn has_handler(&self, handler: &HandlerName) -> bool {
        self.handlers.contains(handler)
    }

    /// The kind of a keyed handler (`None` for services and unknown handlers).
    pub fn kind_of(&self, handler: &HandlerName) -> Option<HandlerKind> {
        self.kinds.get(handler).copied()
    }

    fn to_item(&self) -> Item {
        let mut item = Item::new();
        item.extend(keys::service_key_item(&self.service));
        item.insert("kind".into(), s(self.kind.as_str()));
        item.insert("function_arn".into(), s(self.function_arn.clone()));
        item.insert(
            "handlers".into(),
            AttributeValue::L(self.handlers.iter().map(|h| s(h.as_str())).collect()),
        );
        if !self.kinds.is_empty() {
            item.insert(
                "handler_kinds".into(),
                AttributeValue::M(
                    self.kinds
                        .iter()
                        .map(|(h, k)| (h.to_string(), s(k.as_str())))
                        .collect(),
                ),
            );
        }
        if let Some(r) = self.retention {
            item.insert("retention_secs".into(), n(r.as_secs()));
        }
        item.insert("registered_at".into(), n(now_millis()));
        item
    }

    fn from_item(item: &Item) -> Result<Self, StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt {
            pk: get_s(item, keys::PK).unwrap_or("?").into(),
            sk: get_s(item, keys::SK).unwrap_or("?").into(),
            reason: reason.into(),
        };
        let service = get_s(item, keys::SK)
            .and_then(|name| ServiceName::new(name).ok())
            .ok_or_else(|| corrupt("bad service key"))?;
        let kind = get_s(item, "kind")
            .and_then(|k| k.parse().ok())
            .ok_or_else(|| corrupt("bad kind"))?;
        let function_arn = get_s(item, "function_arn")
            .ok_or_else(|| corrupt("no function_arn"))?
            .to_owned();
        let handlers = item
            .get("handlers")
            .and_then(|v| v.as_l().ok())
            .ok_or_else(|| corrupt("no handlers"))?
            .iter()
            .filter_map(|v| {
                v.as_s()
                    .ok()
                    .and_then(|h| HandlerName::new(h.as_str()).ok())
            })
            .collect();
        let kinds = item
            .get("handler_kinds")
            .and_then(|v| v.as_m().ok())
            .map(|m| {
                m.iter()
                    .filter_map(|(h, k)| {
                        let kind = k.as_s().ok()?.parse().ok()?;
                        Some((HandlerName::new(h.as_str()).ok()?, kind))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            service,
            kind,
            function_arn,
            handlers,
            kinds,
            retention: get_n(item, "retention_secs").map(std::time::Duration::from_secs),
        })
    }
}

/// Registrations read recently, by service: a warm orchestrator does not read the registry
/// item on every request.
type Cache =
    std::sync::Mutex<std::collections::HashMap<ServiceName, (std::time::Instant, Registration)>>;

/// Reads and writes registry items.
#[derive(Debug, Clone)]
pub struct Registry {
    client: Client,
    table: String,
    /// How long a cached registration is used (zero: never cached).
    cache_for: std::time::Duration,
    cache: std::sync::Arc<Cache>,
}

impl Registry {
    /// A registry in `table` whose registrations are reused for `cache_for` once read.
    pub fn new(client: Client, table: impl Into<String>, cache_for: std::time::Duration) -> Self {
        Self {
            client,
            table: table.into(),
            cache_for,
            cache: Default::default(),
        }
    }

    /// The live registration of `service`, if any: from the cache while it is fresh (a new
    /// version is picked up within the cache time; an unknown service is always read again).
    pub async fn lookup(&self, service: &ServiceName) -> Result<Option<Registration>, StoreError> {
        let cached = {
            let cache = self.cache.lock().expect("registry cache poisoned");
            cache
                .get(service)
                .filter(|(read_at, _)| read_at.elapsed() < self.cache_for)
                .map(|(_, reg)| reg.clone())
        };
        if cached.is_some() {
            return Ok(cached);
        }
        let reg = self.read(service).await?;
        if let Some(reg) = &reg {
            self.cache
                .lock()
                .expect("registry cache poisoned")
                .insert(service.clone(), (std::time::Instant::now(), reg.clone()));
        }
        Ok(reg)
    }

    /// The live registration of `service` as stored.
    async fn read(&self, service: &ServiceName) -> Result<Option<Registration>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::service_key_item(service)))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item.as_ref().map(Registration::from_item).transpose()
    }

    /// The names of every registered service (one query of the registry's partition): the
    /// sweep walks each service's minute partitions.
    pub async fn services(&self) -> Result<Vec<ServiceName>, StoreError> {
        let mut names = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_names("#sk", keys::SK)
                .expression_attribute_values(":pk", s(keys::REGISTRY_PK))
                .projection_expression("#sk")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            names.extend(
                out.items()
                    .iter()
                    .filter_map(|i| get_s(i, keys::SK))
                    .filter_map(|n| ServiceName::new(n).ok()),
            );
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(names),
            }
        }
    }

    /// Makes `reg` the live registration of its service (new invocations use it; running ones
    /// keep the version they started on).
    pub async fn put(&self, reg: &Registration) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(reg.to_item()))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("PutItem", e))?;
        self.cache
            .lock()
            .expect("registry cache poisoned")
            .remove(&reg.service);
        Ok(())
    }
}

/// The ARN of the exact version that ran, from the ARN that was invoked (unqualified, alias or
/// version) and the version Lambda reports as executed.
pub fn pin_version(invoked_arn: &str, executed_version: Option<&str>) -> String {
    // arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
    let parts: Vec<&str> = invoked_arn.split(':').collect();
    let base = if parts.len() > 7 {
        parts[..7].join(":")
    } else {
        invoked_arn.to_owned()
    };
    match executed_version {
        Some(v) if v != "$LATEST" && !v.is_empty() => format!("{base}:{v}"),
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_to_the_executed_version() {
        let f = "arn:aws:lambda:us-east-1:000000000000:function:checkout";
        assert_eq!(
            pin_version(&format!("{f}:live"), Some("3")),
            format!("{f}:3")
        );
        assert_eq!(pin_version(f, Some("7")), format!("{f}:7"));
        assert_eq!(pin_version(&format!("{f}:2"), Some("2")), format!("{f}:2"));
        assert_eq!(pin_version(f, Some("$LATEST")), f);
        assert_eq!(pin_version(f, None), f);
    }

    #[test]
    fn registrations_round_trip() {
        let reg = Registration {
            service: ServiceName::new("checkout").unwrap(),
            kind: ServiceKind::Service,
            function_arn: "arn:aws:lambda:us-east-1:000000000000:function:checkout:1".into(),
            handlers: vec![
                HandlerName::new("checkout").unwrap(),
                HandlerName::new("refund").unwrap(),
            ],
            kinds: BTreeMap::new(),
            retention: None,
        };
        assert_eq!(Registration::from_item(&reg.to_item()).unwrap(), reg);
        assert!(reg.has_handler(&HandlerName::new("refund").unwrap()));
        assert!(!reg.has_handler(&HandlerName::new("nope").unwrap()));
        let add = HandlerName::new("add").unwrap();
        let object = Registration {
            kind: ServiceKind::Object,
            handlers: vec![add.clone()],
            kinds: BTreeMap::from([(add.clone(), HandlerKind::Exclusive)]),
            retention: Some(std::time::Duration::from_secs(7 * 86_400)),
            ..reg
        };
        let back = Registration::from_item(&object.to_item()).unwrap();
        assert_eq!(back, object);
        assert_eq!(back.kind_of(&add), Some(HandlerKind::Exclusive));
    }
}
