//! Typed identifiers. Every name that ends up in a DynamoDB key or a URL is validated here once.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Why a name or id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {max} characters")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} {value:?} may only contain ASCII letters, digits, '_' and '-', and must start with a letter")]
    InvalidCharacters { what: &'static str, value: String },
    #[error("{what} {value:?} is reserved")]
    Reserved { what: &'static str, value: String },
    #[error("invocation id {0:?} is malformed")]
    MalformedInvocationId(String),
    #[error("awakeable id {0:?} is malformed")]
    MalformedAwakeableId(String),
    #[error("{what} {value:?} may only contain ASCII letters, digits and {allowed}")]
    InvalidKey {
        what: &'static str,
        value: String,
        allowed: &'static str,
    },
    #[error("{what} {value:?} reads as a path (only dots)")]
    PathLike { what: &'static str, value: String },
}

const NAME_MAX: usize = 64;
/// Path segments the ingress uses for its own routes; no service may take them.
const RESERVED_SERVICE_NAMES: &[&str] = &["invocations", "awakeables", "deployments", "health"];

fn validate_name(what: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { what });
    }
    if value.len() > NAME_MAX {
        return Err(IdError::TooLong {
            what,
            max: NAME_MAX,
        });
    }
    let mut chars = value.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(IdError::InvalidCharacters {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps a name.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                Self::validate(&value)?;
                Ok(Self(value))
            }

            /// The name as it appears in URLs and keys.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
    };
}

name_type!(
    /// The name of a durable service, unique within one orchestrator.
    ServiceName,
    "service name"
);
name_type!(
    /// The name of a handler within a service.
    HandlerName,
    "handler name"
);

impl ServiceName {
    fn validate(value: &str) -> Result<(), IdError> {
        validate_name("service name", value)?;
        if RESERVED_SERVICE_NAMES.contains(&value) {
            return Err(IdError::Reserved {
                what: "service name",
                value: value.to_owned(),
            });
        }
        Ok(())
    }
}

impl HandlerName {
    fn validate(value: &str) -> Result<(), IdError> {
        validate_name("handler name", value)
    }
}

/// A caller-chosen key that makes a request idempotent: the same key returns the same invocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Longest accepted key, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Validates a key: 1 to 256 printable ASCII characters.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        if value.is_empty() {
            return Err(IdError::Empty {
                what: "idempotency key",
            });
        }
        if value.len() > Self::MAX_LEN {
            return Err(IdError::TooLong {
                what: "idempotency key",
                max: Self::MAX_LEN,
            });
        }
        if !value.chars().all(|c| c.is_ascii_graphic()) {
            return Err(IdError::InvalidCharacters {
                what: "idempotency key",
                value,
            });
        }
        Ok(Self(value))
    }

    /// The key as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The key of a virtual object or workflow: which instance (`cart/ada`) a keyed handler runs on.
/// It appears in URLs and DynamoDB keys, so it is 1 to 256 URL-safe characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Longest accepted key, in bytes.
    pub const MAX_LEN: usize = 256;
    const ALLOWED: &'static str = "'-', '_', '.', '~', '@', '+', '=', ':', ','";

    /// Validates a key.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        if value.is_empty() {
            return Err(IdError::Empty { what: "object key" });
        }
        if value.len() > Self::MAX_LEN {
            return Err(IdError::TooLong {
                what: "object key",
                max: Self::MAX_LEN,
            });
        }
        let ok = |c: char| c.is_ascii_alphanumeric() || "-_.~@+=:,".contains(c);
        // `.`, `..` (and longer runs of dots) read as paths: refused everywhere a key is used.
        if value.chars().all(|c| c == '.') {
            return Err(IdError::PathLike {
                what: "object key",
                value,
            });
        }
        if !value.chars().all(ok) {
            return Err(IdError::InvalidKey {
                what: "object key",
                value: value.chars().take(80).collect(),
                allowed: Self::ALLOWED,
            });
        }
        Ok(Self(value))
    }

    /// The key as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ObjectKey {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::new(value)
    }
}

impl From<ObjectKey> for String {
    fn from(value: ObjectKey) -> String {
        value.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of one invocation: `inv_<service>.<local part>`. The service it runs in is part of
/// the id, so every key built from it (`inv#<service>#...`, `payloads/<service>/...`) can be
/// granted per service. The local part is 32 lowercase hex digits (derived ids), or `t`, the
/// minute it was made in (8 hex digits), a shard (1 hex digit) and 22 random hex digits (a
/// dated id: its metadata item lives in that minute's and shard's partition, see
/// `store::keys::meta_key`). Users treat ids as opaque.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InvocationId(String);

impl InvocationId {
    const PREFIX: &'static str = "inv_";
    const HEX_LEN: usize = 32;
    /// The mark of a dated id, where derived ids have their first hex digit.
    const DATED: char = 't';
    /// Between the service and the local part (never in a service name).
    const SEPARATOR: char = '.';
    /// How many partitions share one minute's dated metadata items (per service).
    pub const SHARDS: u8 = 8;

    fn from_parts(service: &ServiceName, local: &str) -> Self {
        Self(format!(
            "{}{service}{}{local}",
            Self::PREFIX,
            Self::SEPARATOR
        ))
    }

    /// A fresh random id.
    pub fn random(service: &ServiceName) -> Self {
        Self::from_parts(service, &uuid::Uuid::new_v4().simple().to_string())
    }

    /// A fresh random id that carries the minute `now_ms` falls in: the lease sweep finds its
    /// metadata item by that minute, so a new invocation needs no `leases` index entry.
    pub fn dated(service: &ServiceName, now_ms: u64) -> Self {
        let minute = (now_ms / 60_000) as u32;
        let uuid = uuid::Uuid::new_v4();
        let shard = uuid.as_bytes()[15] % Self::SHARDS;
        let random = uuid.simple().to_string();
        let local = format!(
            "{}{minute:08x}{shard:x}{}",
            Self::DATED,
            &random[..Self::HEX_LEN - 10]
        );
        Self::from_parts(service, &local)
    }

    /// The service this invocation runs in (validated when the id was made or parsed).
    pub fn service(&self) -> ServiceName {
        ServiceName(self.service_str().to_owned())
    }

    /// The service part of the id, as text.
    pub fn service_str(&self) -> &str {
        let rest = &self.0[Self::PREFIX.len()..];
        &rest[..rest.len() - Self::HEX_LEN - 1]
    }

    /// The local part: 32 characters, unique within the service (and, random or hashed with
    /// the service, in practice across services too). Schedule names use it.
    pub fn local(&self) -> &str {
        &self.0[self.0.len() - Self::HEX_LEN..]
    }

    /// The minute (since the Unix epoch) and shard of a dated id; `None` for other ids. The
    /// shard is written in the id, so more shards later leave existing ids where they are.
    pub fn bucket(&self) -> Option<(u32, u8)> {
        let rest = self.local().strip_prefix(Self::DATED)?;
        let minute = u32::from_str_radix(&rest[..8], 16).ok()?;
        let shard = u8::from_str_radix(&rest[8..9], 16).ok()?;
        Some((minute, shard))
    }

    /// The id an idempotent request maps to: the same (target, key) always gives the same id,
    /// so creating the invocation with a conditional put is the idempotency check.
    pub fn for_idempotency_key(
        service: &ServiceName,
        handler: &HandlerName,
        key: &IdempotencyKey,
    ) -> Self {
        Self::derived(service, &["idem", handler.as_str(), key.as_str()])
    }

    /// The id of an idempotent request to a keyed handler (the object key is part of the target).
    pub fn for_keyed_idempotency_key(
        service: &ServiceName,
        key: &ObjectKey,
        handler: &HandlerName,
        idempotency_key: &IdempotencyKey,
    ) -> Self {
        Self::derived(
            service,
            &[
                "idem-keyed",
                key.as_str(),
                handler.as_str(),
                idempotency_key.as_str(),
            ],
        )
    }

    /// The id of a workflow's `run`: one per (workflow, key), so submitting it twice finds the
    /// first submission.
    pub fn for_workflow(service: &ServiceName, key: &ObjectKey) -> Self {
        Self::derived(service, &["workflow", key.as_str()])
    }

    /// A deterministic id of `service` derived from parts (hashed with the service and with
    /// separators, so parts cannot run together).
    pub fn derived(service: &ServiceName, parts: &[&str]) -> Self {
        let mut hasher = Sha256::new();
        for part in std::iter::once(service.as_str()).chain(parts.iter().copied()) {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        let digest = hasher.finalize();
        let hex: String = digest[..Self::HEX_LEN / 2]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self::from_parts(service, &hex)
    }

    /// The id of the child invocation (in service `service`) created by entry `index` of
    /// `parent`: retries of the parent always name the same child, so creating it is
    /// idempotent.
    pub fn child(parent: &InvocationId, index: u32, service: &ServiceName) -> Self {
        Self::derived(service, &["child", parent.as_str(), &index.to_string()])
    }

    /// Parses an id given by a user, e.g. in a URL.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let bad = || IdError::MalformedInvocationId(value.chars().take(80).collect());
        let rest = value.strip_prefix(Self::PREFIX).ok_or_else(bad)?;
        let (service, local) = rest.rsplit_once(Self::SEPARATOR).ok_or_else(bad)?;
        ServiceName::validate(service).map_err(|_| bad())?;
        let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        let ok = local.len() == Self::HEX_LEN
            && local
                .char_indices()
                .all(|(i, c)| hex(c) || (i == 0 && c == Self::DATED));
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(bad())
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InvocationId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::parse(&value)
    }
}

impl From<InvocationId> for String {
    fn from(value: InvocationId) -> String {
        value.0
    }
}

impl fmt::Display for InvocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> ServiceName {
        ServiceName::new("svc").unwrap()
    }

    #[test]
    fn dated_ids_carry_their_minute_and_parse_back() {
        let now = 1_764_000_000_123u64;
        let id = InvocationId::dated(&svc(), now);
        assert_eq!(id.as_str().len(), 40);
        assert!(id.as_str().starts_with("inv_svc.t"), "{id}");
        assert_eq!(id.service(), svc());
        assert_eq!(id.local().len(), 32);
        let (minute, shard) = id.bucket().expect("dated");
        assert_eq!(u64::from(minute), now / 60_000);
        assert!(shard < InvocationId::SHARDS);
        assert_eq!(InvocationId::parse(id.as_str()).unwrap(), id);
        assert_ne!(
            InvocationId::dated(&svc(), now),
            id,
            "random beyond the minute"
        );
        assert_eq!(InvocationId::random(&svc()).bucket(), None);
        assert_eq!(InvocationId::derived(&svc(), &["x"]).bucket(), None);
        for bad in [
            "inv_svc.tt0000000000000000000000000000",
            "inv_svc.0t000000000000000000000000000000",
            "inv_t0000000000000000000000000000000",
            "inv_9svc.00000000000000000000000000000000",
            "inv_invocations.00000000000000000000000000000000",
            "inv_a.b.00000000000000000000000000000000",
        ] {
            assert!(InvocationId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_validated() {
        assert!(ServiceName::new("checkout").is_ok());
        assert!(ServiceName::new("Order_v2-x").is_ok());
        assert_eq!(
            ServiceName::new(""),
            Err(IdError::Empty {
                what: "service name"
            })
        );
        assert!(matches!(
            ServiceName::new("9lives"),
            Err(IdError::InvalidCharacters { .. })
        ));
        assert!(matches!(
            ServiceName::new("a/b"),
            Err(IdError::InvalidCharacters { .. })
        ));
        assert!(matches!(
            ServiceName::new("a#b"),
            Err(IdError::InvalidCharacters { .. })
        ));
        assert!(matches!(
            ServiceName::new("invocations"),
            Err(IdError::Reserved { .. })
        ));
        assert!(HandlerName::new("invocations").is_ok());
        assert!(matches!(
            HandlerName::new("x".repeat(65)),
            Err(IdError::TooLong { .. })
        ));
    }

    #[test]
    fn idempotent_ids_are_deterministic_and_distinct() {
        let s = ServiceName::new("svc").unwrap();
        let h = HandlerName::new("run").unwrap();
        let k1 = IdempotencyKey::new("order-1").unwrap();
        let k2 = IdempotencyKey::new("order-2").unwrap();
        let a = InvocationId::for_idempotency_key(&s, &h, &k1);
        assert_eq!(a, InvocationId::for_idempotency_key(&s, &h, &k1));
        assert_ne!(a, InvocationId::for_idempotency_key(&s, &h, &k2));
        assert_eq!(InvocationId::parse(a.as_str()), Ok(a.clone()));
        assert_eq!(a.service(), s);
        // parts are length-prefixed: ("ab","c") and ("a","bc") differ
        assert_ne!(
            InvocationId::derived(&s, &["ab", "c"]),
            InvocationId::derived(&s, &["a", "bc"])
        );
        let other = ServiceName::new("other").unwrap();
        assert_ne!(
            InvocationId::derived(&s, &["x"]).local(),
            InvocationId::derived(&other, &["x"]).local(),
            "the service is hashed in"
        );
        let child = InvocationId::child(&a, 3, &other);
        assert_eq!(child.service(), other);
        assert_eq!(child, InvocationId::child(&a, 3, &other));
    }

    #[test]
    fn object_keys_are_url_safe() {
        assert!(ObjectKey::new("ada@example.com").is_ok());
        assert!(ObjectKey::new("cart-1_x.y~z+1=2:3,4").is_ok());
        assert!(ObjectKey::new("").is_err());
        assert!(ObjectKey::new("a/b").is_err());
        assert!(ObjectKey::new(".").is_err());
        assert!(ObjectKey::new("..").is_err());
        assert!(ObjectKey::new("a..b").is_ok());
        assert!(ObjectKey::new("a b").is_err());
        assert!(ObjectKey::new("a#b").is_err());
        assert!(ObjectKey::new("x".repeat(257)).is_err());
        let s = ServiceName::new("wf").unwrap();
        let k = ObjectKey::new("k").unwrap();
        assert_eq!(
            InvocationId::for_workflow(&s, &k),
            InvocationId::for_workflow(&s, &k)
        );
        assert_ne!(
            InvocationId::for_workflow(&s, &k),
            InvocationId::for_workflow(&s, &ObjectKey::new("k2").unwrap())
        );
    }

    #[test]
    fn invocation_ids_parse_strictly() {
        let id = InvocationId::random(&svc());
        assert_eq!(InvocationId::parse(id.as_str()).unwrap(), id);
        assert!(InvocationId::parse("inv_123").is_err());
        assert!(InvocationId::parse(&id.as_str().to_uppercase()).is_err());
        assert!(InvocationId::parse("xyz_0123456789abcdef0123456789abcdef").is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<InvocationId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<InvocationId>("\"nope\"").is_err());
    }

    #[test]
    fn idempotency_keys_are_bounded() {
        assert!(IdempotencyKey::new("a-b_c.1").is_ok());
        assert!(IdempotencyKey::new("").is_err());
        assert!(IdempotencyKey::new("has space").is_err());
        assert!(IdempotencyKey::new("k".repeat(257)).is_err());
    }
}
