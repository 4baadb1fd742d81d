//! Keys and tags that make handles unforgeable: an awakeable id handed to an outsider, and the
//! control events a handler (or a timer) sends to the orchestrator.
//!
//! The orchestrator holds one [`SigningKey`] (random, kept in its table where no handler may
//! read it). Each service's [`ServiceKey`] is a MAC of the service name under it, and each
//! invocation's [`InvocationKey`] a MAC of the invocation id under its service's key. The
//! orchestrator gives the handler its service's key with every push; the handler tags what it
//! hands out, and proves the events it sends, with its invocations' keys. The orchestrator
//! recomputes a tag to verify it, so nothing per invocation is stored, and a handler learns
//! nothing that lets it act on another service's invocations.

use crate::ids::{IdError, InvocationId, ServiceName};
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use std::fmt;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// What a tag is for: a tag made for one purpose never verifies for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// An awakeable id, completed from outside.
    Awakeable,
    /// A `dispatch` event (a recorded call or send).
    Dispatch,
    /// A `resume` event (an entry was completed).
    Resume,
    /// A `drive` event (a retry, a hand-off, a delayed start).
    Drive,
    /// A `wake` event (a timer's schedule).
    Wake,
    /// A `cancel_child` event (a handler cancels the child of one of its calls or sends).
    CancelChild,
    /// A `complete_promise` event (a handler completes a workflow's promise).
    CompletePromise,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Awakeable => b"awakeable",
            Purpose::Dispatch => b"dispatch",
            Purpose::Resume => b"resume",
            Purpose::Drive => b"drive",
            Purpose::Wake => b"wake",
            Purpose::CancelChild => b"cancel_child",
            Purpose::CompletePromise => b"complete_promise",
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = text.get(2 * i..2 * i + 2)?;
        if !pair
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return None;
        }
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

fn mac(key: &[u8; 32], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac
}

/// The orchestrator's secret: 32 random bytes. Never leaves the orchestrator.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey([u8; 32]);

impl SigningKey {
    /// A fresh random key (from the operating system's generator, through v4 UUIDs).
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self(key)
    }

    /// The key from its stored hex form.
    pub fn from_hex(text: &str) -> Option<Self> {
        unhex::<32>(text).map(Self)
    }

    /// The key's hex form, to store it.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// The key of one service, pushed to the handlers that serve it.
    pub fn service_key(&self, service: &ServiceName) -> ServiceKey {
        ServiceKey(derive(&self.0, b"service", service.as_str()))
    }

    /// The key of one invocation (under its service's key).
    pub fn invocation_key(&self, id: &InvocationId) -> InvocationKey {
        self.service_key(&id.service()).invocation_key(id)
    }

    /// Whether `tag` was made for (`purpose`, `index`) with the key of invocation `id`.
    pub fn verify(&self, id: &InvocationId, purpose: Purpose, index: u32, tag: &Tag) -> bool {
        self.invocation_key(id).verify(purpose, index, tag)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

fn derive(key: &[u8; 32], label: &[u8], name: &str) -> [u8; 32] {
    let out = mac(key, &[label, name.as_bytes()]).finalize().into_bytes();
    let mut derived = [0u8; 32];
    derived.copy_from_slice(&out);
    derived
}

/// One service's key: pushed to its handlers (as 64 hex digits), so they can make the keys of
/// its invocations.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceKey([u8; 32]);

impl ServiceKey {
    /// The key of invocation `id` of this service.
    pub fn invocation_key(&self, id: &InvocationId) -> InvocationKey {
        InvocationKey(derive(&self.0, b"invocation", id.as_str()))
    }
}

impl fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceKey(..)")
    }
}

impl TryFrom<String> for ServiceKey {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        unhex::<32>(&value)
            .map(Self)
            .ok_or_else(|| "a service key is 64 lowercase hex digits".to_owned())
    }
}

impl From<ServiceKey> for String {
    fn from(value: ServiceKey) -> String {
        hex(&value.0)
    }
}

/// One invocation's key: tags the handles it hands out and proves the events sent for it.
#[derive(Clone, PartialEq, Eq)]
pub struct InvocationKey([u8; 32]);

impl InvocationKey {
    /// The tag of (`purpose`, `index`) under this key.
    pub fn tag(&self, purpose: Purpose, index: u32) -> Tag {
        let out = self.mac(purpose, index).finalize().into_bytes();
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&out[..16]);
        Tag(tag)
    }

    /// Whether `tag` is the tag of (`purpose`, `index`), compared in constant time.
    pub fn verify(&self, purpose: Purpose, index: u32, tag: &Tag) -> bool {
        self.mac(purpose, index)
            .verify_truncated_left(&tag.0)
            .is_ok()
    }

    fn mac(&self, purpose: Purpose, index: u32) -> HmacSha256 {
        mac(&self.0, &[purpose.label(), &index.to_be_bytes()])
    }
}

impl fmt::Debug for InvocationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InvocationKey(..)")
    }
}

/// A 128-bit tag (32 hex digits): in awakeable ids and as the `proof` of control events.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag([u8; 16]);

impl Tag {
    /// A tag from its text (32 lowercase hex digits).
    pub fn parse(text: &str) -> Option<Self> {
        unhex::<16>(text).map(Self)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({self})")
    }
}

impl TryFrom<String> for Tag {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value).ok_or_else(|| "a tag is 32 lowercase hex digits".to_owned())
    }
}

impl From<Tag> for String {
    fn from(value: Tag) -> String {
        value.to_string()
    }
}

/// The id of an awakeable, handed to outsiders who complete it: which invocation and entry it
/// completes, and a tag (a MAC of both under the invocation's key, see this module) that
/// the orchestrator verifies, so an id cannot be made from public facts. Written
/// `awk_<service>.<local part>.<entry index>.<tag>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AwakeableId {
    pub invocation: InvocationId,
    pub index: u32,
    pub tag: Tag,
}

impl AwakeableId {
    /// Parses an id given by a user, e.g. in a URL (the tag is checked by the orchestrator).
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let bad = || IdError::MalformedAwakeableId(value.chars().take(80).collect());
        let rest = value.strip_prefix("awk_").ok_or_else(bad)?;
        let mut parts = rest.split('.');
        let (Some(service), Some(local), Some(index), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        let invocation =
            InvocationId::parse(&format!("inv_{service}.{local}")).map_err(|_| bad())?;
        if index.is_empty() || index.len() > 10 || !index.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let index = index.parse().map_err(|_| bad())?;
        let tag = Tag::parse(tag).ok_or_else(bad)?;
        Ok(Self {
            invocation,
            index,
            tag,
        })
    }
}

impl TryFrom<String> for AwakeableId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::parse(&value)
    }
}

impl From<AwakeableId> for String {
    fn from(value: AwakeableId) -> String {
        value.to_string()
    }
}

impl fmt::Display for AwakeableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inv = &self.invocation;
        write!(
            f,
            "awk_{}.{}.{}.{}",
            inv.service_str(),
            inv.local(),
            self.index,
            self.tag
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ServiceName;

    #[test]
    fn tags_verify_only_for_their_invocation_purpose_and_index() {
        let key = SigningKey::random();
        let svc = ServiceName::new("svc").unwrap();
        let a = InvocationId::random(&svc);
        let b = InvocationId::random(&svc);
        let tag = key.invocation_key(&a).tag(Purpose::Awakeable, 3);
        assert!(key.verify(&a, Purpose::Awakeable, 3, &tag));
        assert!(!key.verify(&a, Purpose::Awakeable, 4, &tag));
        assert!(!key.verify(&a, Purpose::Dispatch, 3, &tag));
        assert!(!key.verify(&b, Purpose::Awakeable, 3, &tag));
        assert!(!SigningKey::random().verify(&a, Purpose::Awakeable, 3, &tag));
        assert_eq!(Tag::parse(&tag.to_string()), Some(tag));
        assert_eq!(Tag::parse("zz"), None);
        assert_eq!(Tag::parse(&"A".repeat(32)), None);
    }

    #[test]
    fn keys_round_trip_and_stay_out_of_debug_output() {
        let key = SigningKey::random();
        assert_eq!(SigningKey::from_hex(&key.to_hex()), Some(key.clone()));
        assert_ne!(SigningKey::random(), key);
        let svc = ServiceName::new("s").unwrap();
        let service = key.service_key(&svc);
        let json = serde_json::to_string(&service).unwrap();
        assert_eq!(serde_json::from_str::<ServiceKey>(&json).unwrap(), service);
        assert_eq!(format!("{service:?}"), "ServiceKey(..)");
        assert!(serde_json::from_str::<ServiceKey>("\"00\"").is_err());
        let id = InvocationId::random(&svc);
        assert!(service.invocation_key(&id) == key.invocation_key(&id));
        let other = key.service_key(&ServiceName::new("t").unwrap());
        assert!(
            other.invocation_key(&id) != key.invocation_key(&id),
            "another service's key makes other tags"
        );
    }

    #[test]
    fn awakeable_ids_round_trip() {
        let invocation = InvocationId::random(&ServiceName::new("svc").unwrap());
        let tag = SigningKey::random()
            .invocation_key(&invocation)
            .tag(Purpose::Awakeable, 7);
        let id = AwakeableId {
            invocation,
            index: 7,
            tag: tag.clone(),
        };
        let text = id.to_string();
        assert!(
            text.starts_with("awk_svc.") && text.contains(".7."),
            "{text}"
        );
        assert!(text.ends_with(&tag.to_string()), "{text}");
        assert_eq!(AwakeableId::parse(&text).unwrap(), id);
        for bad in [
            "",
            "awk_",
            "awk_zz_1",
            &text.replace(".7.", ".."),
            &text.replace(".7.", ".x."),
            &text.replace("awk_", "inv_"),
            &text[..text.len() - 1],
            &format!("{text}.0"),
        ] {
            assert!(AwakeableId::parse(bad).is_err(), "{bad}");
        }
    }
}
