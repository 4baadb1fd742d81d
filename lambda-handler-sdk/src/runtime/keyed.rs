//! The object (or workflow instance) a keyed attempt runs on, and its state as the attempt sees
//! it: what was pushed, read or changed so far.

use durable_protocol::keyed::ObjectRef;
use durable_protocol::EagerState;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The object of a keyed invocation and its state as this attempt sees it.
pub(crate) struct Keyed {
    pub(crate) object: ObjectRef,
    pub(crate) view: Mutex<StateView>,
    /// A workflow's `run`: its state changes are also written as they are recorded, so its
    /// shared handlers see its progress (an exclusive handler's apply only when it finishes).
    pub(crate) writes_through: bool,
}

/// Known state values (`None`: no value) over what is stored.
pub(crate) struct StateView {
    pub(crate) values: BTreeMap<String, Option<serde_json::Value>>,
    /// `values` knows every key: one it does not hold has no value.
    pub(crate) complete: bool,
}

impl Keyed {
    pub(crate) fn new(object: ObjectRef, eager: Option<EagerState>, writes_through: bool) -> Self {
        let eager = eager.unwrap_or_default();
        Self {
            object,
            writes_through,
            view: Mutex::new(StateView {
                values: eager
                    .values
                    .into_iter()
                    .map(|(k, v)| (k, Some(v)))
                    .collect(),
                complete: eager.complete,
            }),
        }
    }
}
