//! W3C trace context (`traceparent`): an HTTP caller's trace is kept with its invocation and
//! carried to the invocation's children, so a call tree is one trace. An invocation that came
//! without one gets a trace id derived from its own id (nothing stored for it).

use crate::InvocationId;
use sha2::{Digest, Sha256};
use std::fmt;

/// A `traceparent` header value: `00-<trace id, 32 hex>-<parent id, 16 hex>-<flags, 2 hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: String,
    pub parent_id: String,
    pub flags: u8,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl TraceParent {
    /// Parses a `traceparent` value (version `00`; all-zero ids are invalid, as the spec says).
    pub fn parse(value: &str) -> Result<Self, String> {
        let bad = || format!("traceparent {value:?} is not 00-<32 hex>-<16 hex>-<2 hex>");
        let parts: Vec<&str> = value.trim().split('-').collect();
        let [version, trace_id, parent_id, flags] = parts.as_slice() else {
            return Err(bad());
        };
        if *version != "00"
            || !is_hex(trace_id, 32)
            || !is_hex(parent_id, 16)
            || !is_hex(flags, 2)
            || trace_id.bytes().all(|b| b == b'0')
            || parent_id.bytes().all(|b| b == b'0')
        {
            return Err(bad());
        }
        Ok(Self {
            trace_id: (*trace_id).to_owned(),
            parent_id: (*parent_id).to_owned(),
            flags: u8::from_str_radix(flags, 16).map_err(|_| bad())?,
        })
    }

    /// The trace of an invocation that came without one: its id, hashed (sampled).
    pub fn of_invocation(id: &InvocationId) -> Self {
        let digest = Sha256::digest(id.as_str().as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            trace_id: hex[..32].to_owned(),
            parent_id: hex[32..48].to_owned(),
            flags: 1,
        }
    }

    /// The context an invocation's child `child` runs in: the same trace, the child's own span.
    pub fn child(&self, child: &InvocationId) -> Self {
        let span = Self::of_invocation(child);
        Self {
            trace_id: self.trace_id.clone(),
            parent_id: span.parent_id,
            flags: self.flags,
        }
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prints_and_refuses() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceParent::parse(text).unwrap();
        assert_eq!(t.to_string(), text);
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert!(TraceParent::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn children_stay_in_their_parent_trace() {
        let svc = crate::ServiceName::new("svc").unwrap();
        let parent = TraceParent::of_invocation(&InvocationId::dated(&svc, 0));
        let child_id = InvocationId::random(&svc);
        let child = parent.child(&child_id);
        assert_eq!(child.trace_id, parent.trace_id);
        assert_ne!(child.parent_id, parent.parent_id);
        assert_eq!(parent, TraceParent::parse(&parent.to_string()).unwrap());
    }
}
