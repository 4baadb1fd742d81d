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
}

/// Known state values (`None`: no value) over what is stored.
pub(crate) struct StateView {
    pub(crate) values: BTreeMap<String, Option<serde_json::Value>>,
    /// `values` knows every key: one it does not hold has no value.
    pub(crate) complete: bool,
}

impl Keyed {
    pub(crate) fn new(object: ObjectRef, eager: Option<EagerState>) -> Self {
        let eager = eager.unwrap_or_default();
        Self {
            object,
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
