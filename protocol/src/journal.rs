//! The journal: the recorded history of one invocation that replay is built on.

use crate::ids::{HandlerName, InvocationId, ObjectKey, ServiceName};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// A terminal failure: it is recorded, replayed as is, and never retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalFailure {
    /// An HTTP-like status the ingress answers with (4xx or 5xx; 500 by default).
    pub code: u16,
    /// A message meant for the caller.
    pub message: String,
}

impl TerminalFailure {
    /// The request itself was wrong (e.g. a keyed handler pushed without a key).
    pub const BAD_REQUEST: u16 = 400;
    /// Not allowed (e.g. a handler kind that may not do what was asked).
    pub const FORBIDDEN: u16 = 403;
    /// It collides with what is recorded (e.g. a promise completed already).
    pub const CONFLICT: u16 = 409;
    /// Something failed that the caller cannot fix; the default code of a terminal error.
    pub const INTERNAL: u16 = 500;
    /// Status code for a replay that diverged from the journal (as Restate uses).
    pub const NON_DETERMINISM: u16 = 570;

    /// The message of the failure a cancelled invocation's handler sees (with `409`).
    pub const CANCELLED: &'static str = "cancelled";
    /// The message a killed invocation fails with (with `409`).
    pub const KILLED: &'static str = "killed";
    /// The code of an awakeable (or a wait) that was not completed in time.
    pub const TIMEOUT: u16 = 408;

    /// A failure with a status code and message.
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// What a cancelled invocation's handler sees at its next durable await: `409 cancelled`.
    pub fn cancelled() -> Self {
        Self::new(Self::CONFLICT, Self::CANCELLED)
    }

    /// What the waiter of an awakeable that passed its deadline gets: `408`.
    pub fn timed_out(what: &str) -> Self {
        Self::new(Self::TIMEOUT, format!("{what} timed out"))
    }

    /// What a killed invocation fails with: `409 killed`.
    pub fn killed() -> Self {
        Self::new(Self::CONFLICT, Self::KILLED)
    }

    /// Whether this is the failure of a cancellation ([`TerminalFailure::cancelled`]).
    pub fn is_cancelled(&self) -> bool {
        self.code == Self::CONFLICT && self.message == Self::CANCELLED
    }

    /// Whether this is the failure of a kill ([`TerminalFailure::killed`]).
    pub fn is_killed(&self) -> bool {
        self.code == Self::CONFLICT && self.message == Self::KILLED
    }
}

/// The recorded outcome of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepResult {
    /// The step returned this value (JSON).
    Value(serde_json::Value),
    /// The step failed terminally; replay returns the same failure.
    Failure(TerminalFailure),
}

/// When an awakeable must be completed: by `until_ms`, and with a heartbeat timeout within
/// `heartbeat_ms` of its creation or of its last heartbeat. Past its deadline the orchestrator
/// completes it with [`TerminalFailure::timed_out`] and refuses a late completion (`410`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwakeableTimeout {
    /// When it was created (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// The latest it may be completed, whatever the heartbeats (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// How long it may go without a completion or a heartbeat (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ms: Option<u64>,
}

impl AwakeableTimeout {
    /// Its deadline, given its last heartbeat (ms), if any.
    pub fn deadline(&self, last_beat_ms: Option<u64>) -> u64 {
        let beat = self.heartbeat_ms.map(|h| {
            last_beat_ms
                .unwrap_or(self.created_at_ms)
                .max(self.created_at_ms)
                .saturating_add(h)
        });
        match (self.until_ms, beat) {
            (Some(until), Some(beat)) => until.min(beat),
            (Some(until), None) => until,
            (None, Some(beat)) => beat,
            (None, None) => u64::MAX,
        }
    }
}

/// What an entry records. Run and select entries are complete when written; sleep and
/// awakeable entries are completed later (the completion is written onto the entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryKind {
    /// A `ctx.run` step and its result.
    Run { name: String, result: StepResult },
    /// An at-most-once step (`StepSemantics::AtMostOncePerRetry`) whose closure started, in
    /// the step's try `attempt` (from 1); its result is the entry's completion. An entry
    /// without one is a try that was interrupted (or failed retryably): it is not run again.
    Started { name: String, attempt: u32 },
    /// A scope (`ctx.scope`, `ctx.map`, `ctx.parallel`) and its result, recorded when the
    /// block finished: replay returns it without running the block's operations again.
    Scope { name: String, result: StepResult },
    /// A durable timer that fires at `wake_at_ms` (ms since the Unix epoch).
    Sleep { name: String, wake_at_ms: u64 },
    /// A promise completed from outside (by its awakeable id), with an optional deadline.
    Awakeable {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<AwakeableTimeout>,
    },
    /// Which of the entries `of` completed first, as the code saw it: replay takes the same one.
    Select { of: Vec<u32>, winner: u32 },
    /// A request/response call of another handler; completed with the callee's result.
    Call {
        target: Target,
        input: serde_json::Value,
        child: InvocationId,
        /// The call is idempotent by this key: its child is the invocation the key names for
        /// the target (whoever started it), and every caller of it gets its result.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        idempotency_key: Option<crate::ids::IdempotencyKey>,
        /// Only waits for `child`, which must exist (a workflow's run attached to): nothing
        /// is started and `input` is `null`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        attach: bool,
    },
    /// A one-way send to another handler, optionally started later (`due_at_ms`).
    Send {
        target: Target,
        input: serde_json::Value,
        child: InvocationId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due_at_ms: Option<u64>,
        /// The send is idempotent by this key: its child is the invocation the same key names
        /// for the target (whoever sent it, also over HTTP), started once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        idempotency_key: Option<crate::ids::IdempotencyKey>,
    },
    /// A state change of a virtual object or workflow: applied when the invocation finishes.
    SetState {
        name: String,
        value: serde_json::Value,
    },
    /// Removes one state key (applied when the invocation finishes).
    ClearState { name: String },
    /// Removes every state key of the object (applied when the invocation finishes).
    ClearAllState,
    /// A state read by a shared handler, recorded so that replay sees the same value.
    GetState {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<serde_json::Value>,
    },
    /// The state keys as a shared handler read them.
    GetStateKeys { keys: Vec<String> },
    /// Waiting for a workflow's durable promise; completed with its value when it is resolved.
    Promise { name: String },
    /// A look at a durable promise without waiting: its result, if it had one then.
    PeekPromise {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<StepResult>,
    },
    /// A resolution (or rejection) of a durable promise by this invocation, and how it went:
    /// `refused` says why it did not take (the promise was completed already).
    CompletePromise {
        name: String,
        result: StepResult,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refused: Option<TerminalFailure>,
    },
}

/// The handler a call or send goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub service: ServiceName,
    /// The object or workflow key, for keyed handlers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<ObjectKey>,
    pub handler: HandlerName,
}

impl Target {
    /// The invocation an idempotency key names for this target: the same whether an HTTP
    /// request or a handler's send carries the key.
    pub fn idempotent_id(&self, key: &crate::ids::IdempotencyKey) -> InvocationId {
        match &self.key {
            Some(object) => {
                InvocationId::for_keyed_idempotency_key(&self.service, object, &self.handler, key)
            }
            None => InvocationId::for_idempotency_key(&self.service, &self.handler, key),
        }
    }
}

impl Target {
    /// The id of the child that entry `index` of `parent` starts here: the one its
    /// idempotency key names, else (for a workflow's `run`) the run of its key, else one made
    /// from the caller and the entry. The one rule the SDK and the orchestrator apply.
    pub fn child_id(
        &self,
        parent: &InvocationId,
        index: u32,
        idempotency_key: Option<&crate::ids::IdempotencyKey>,
        run_of_workflow: bool,
    ) -> InvocationId {
        match (idempotency_key, &self.key) {
            (Some(key), _) => self.idempotent_id(key),
            (None, Some(key)) if run_of_workflow => InvocationId::for_workflow(&self.service, key),
            _ => InvocationId::child(parent, index, &self.service),
        }
    }

    /// `service/handler`, or `service/key/handler` for keyed handlers.
    pub fn display(&self) -> String {
        match &self.key {
            Some(key) => format!("{}/{}/{}", self.service, key, self.handler),
            None => format!("{}/{}", self.service, self.handler),
        }
    }
}

/// The kind of a journal entry without its data: what the `kind` attribute stores and what a
/// completion names to say which entry it expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryTag {
    /// A `ctx.run` step.
    Run,
    /// An at-most-once step that started.
    Started,
    /// A scope's result.
    Scope,
    /// A durable timer.
    Sleep,
    /// A promise completed from outside by its id.
    Awakeable,
    /// The winner of a race of durable futures.
    Select,
    /// A request/response call of another handler.
    Call,
    /// A one-way send to another handler.
    Send,
    /// A state change.
    SetState,
    /// A removed state key.
    ClearState,
    /// All state keys removed.
    ClearAllState,
    /// A recorded state read.
    GetState,
    /// Recorded state key names.
    GetStateKeys,
    /// A wait for a workflow promise.
    Promise,
    /// A look at a workflow promise.
    PeekPromise,
    /// A resolution or rejection of a workflow promise.
    CompletePromise,
}

impl EntryTag {
    /// Every tag, in declaration order.
    pub const ALL: [EntryTag; 16] = [
        EntryTag::Run,
        EntryTag::Started,
        EntryTag::Scope,
        EntryTag::Sleep,
        EntryTag::Awakeable,
        EntryTag::Select,
        EntryTag::Call,
        EntryTag::Send,
        EntryTag::SetState,
        EntryTag::ClearState,
        EntryTag::ClearAllState,
        EntryTag::GetState,
        EntryTag::GetStateKeys,
        EntryTag::Promise,
        EntryTag::PeekPromise,
        EntryTag::CompletePromise,
    ];

    /// The name stored in the `kind` attribute and shown in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryTag::Run => "run",
            EntryTag::Started => "started",
            EntryTag::Scope => "scope",
            EntryTag::Sleep => "sleep",
            EntryTag::Awakeable => "awakeable",
            EntryTag::Select => "select",
            EntryTag::Call => "call",
            EntryTag::Send => "send",
            EntryTag::SetState => "set_state",
            EntryTag::ClearState => "clear_state",
            EntryTag::ClearAllState => "clear_all_state",
            EntryTag::GetState => "get_state",
            EntryTag::GetStateKeys => "get_state_keys",
            EntryTag::Promise => "promise",
            EntryTag::PeekPromise => "peek_promise",
            EntryTag::CompletePromise => "complete_promise",
        }
    }
}

impl std::fmt::Display for EntryTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EntryTag {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntryTag::ALL
            .into_iter()
            .find(|tag| tag.as_str() == s)
            .ok_or_else(|| format!("unknown entry kind {s:?}"))
    }
}

/// The child a call or send entry starts, as the entry records it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChildStart<'a> {
    pub target: &'a Target,
    pub input: &'a serde_json::Value,
    pub child: &'a InvocationId,
    /// A call: the caller waits for the child's result (a send does not).
    pub awaited: bool,
    /// A delayed send's start time.
    pub due_at_ms: Option<u64>,
    /// An idempotent call's or send's key (its child's id derives from it and the target).
    pub idempotency_key: Option<&'a crate::ids::IdempotencyKey>,
    /// A call that only attaches to an existing child (a workflow's run): nothing is created.
    pub attach: bool,
}

impl ChildStart<'_> {
    /// The id the child must have: from the idempotency key, else the workflow's run for a
    /// call or send of a workflow's `run` (`run_of_workflow`, known from the registry), else
    /// from the caller and the entry.
    pub fn expected_child(
        &self,
        parent: &InvocationId,
        index: u32,
        run_of_workflow: bool,
    ) -> InvocationId {
        self.target
            .child_id(parent, index, self.idempotency_key, run_of_workflow)
    }
}

impl EntryKind {
    /// The child this entry starts, if it is a call or a send.
    pub fn child_start(&self) -> Option<ChildStart<'_>> {
        match self {
            EntryKind::Call {
                target,
                input,
                child,
                idempotency_key,
                attach,
            } => Some(ChildStart {
                target,
                input,
                child,
                awaited: true,
                due_at_ms: None,
                idempotency_key: idempotency_key.as_ref(),
                attach: *attach,
            }),
            EntryKind::Send {
                target,
                input,
                child,
                due_at_ms,
                idempotency_key,
            } => Some(ChildStart {
                target,
                input,
                child,
                awaited: false,
                due_at_ms: *due_at_ms,
                idempotency_key: idempotency_key.as_ref(),
                attach: false,
            }),
            _ => None,
        }
    }

    /// The entry's tag.
    pub fn tag(&self) -> EntryTag {
        match self {
            EntryKind::Run { .. } => EntryTag::Run,
            EntryKind::Started { .. } => EntryTag::Started,
            EntryKind::Scope { .. } => EntryTag::Scope,
            EntryKind::Sleep { .. } => EntryTag::Sleep,
            EntryKind::Awakeable { .. } => EntryTag::Awakeable,
            EntryKind::Select { .. } => EntryTag::Select,
            EntryKind::Call { .. } => EntryTag::Call,
            EntryKind::Send { .. } => EntryTag::Send,
            EntryKind::SetState { .. } => EntryTag::SetState,
            EntryKind::ClearState { .. } => EntryTag::ClearState,
            EntryKind::ClearAllState => EntryTag::ClearAllState,
            EntryKind::GetState { .. } => EntryTag::GetState,
            EntryKind::GetStateKeys { .. } => EntryTag::GetStateKeys,
            EntryKind::Promise { .. } => EntryTag::Promise,
            EntryKind::PeekPromise { .. } => EntryTag::PeekPromise,
            EntryKind::CompletePromise { .. } => EntryTag::CompletePromise,
        }
    }

    /// A short label ("run", "sleep", ...) for messages and the `kind` attribute.
    pub fn label(&self) -> &'static str {
        self.tag().as_str()
    }

    /// The user-given name of the entry ("select" for selects, the target for calls and sends).
    pub fn name(&self) -> Cow<'_, str> {
        match self {
            EntryKind::Run { name, .. }
            | EntryKind::Started { name, .. }
            | EntryKind::Scope { name, .. }
            | EntryKind::Sleep { name, .. }
            | EntryKind::Awakeable { name, .. }
            | EntryKind::SetState { name, .. }
            | EntryKind::ClearState { name }
            | EntryKind::GetState { name, .. }
            | EntryKind::Promise { name }
            | EntryKind::PeekPromise { name, .. }
            | EntryKind::CompletePromise { name, .. } => Cow::Borrowed(name),
            EntryKind::ClearAllState | EntryKind::GetStateKeys { .. } => Cow::Borrowed("*"),
            EntryKind::Select { .. } => Cow::Borrowed("select"),
            EntryKind::Call { target, .. } | EntryKind::Send { target, .. } => {
                Cow::Owned(target.display())
            }
        }
    }

    /// Whether replaying code that asks for `other` may adopt this recorded entry:
    /// same kind and same name (and, for selects, the same candidates). Results, wake times
    /// and winners may differ: the recorded ones win.
    pub fn same_command(&self, other: &EntryKind) -> bool {
        match (self, other) {
            (EntryKind::Select { of: a, .. }, EntryKind::Select { of: b, .. }) => a == b,
            _ => self.tag() == other.tag() && self.name() == other.name(),
        }
    }

    /// Whether this kind of entry is completed after it is written.
    pub fn completes_later(&self) -> bool {
        matches!(
            self,
            EntryKind::Started { .. }
                | EntryKind::Sleep { .. }
                | EntryKind::Awakeable { .. }
                | EntryKind::Call { .. }
                | EntryKind::Promise { .. }
        )
    }

    /// The child of a call that belongs to this caller alone (made from the caller and entry
    /// `index`): a parent's kill or cancellation reaches it. An idempotent call's child and a
    /// workflow's run are shared with whoever else started or waits for them, so they are not.
    pub fn owned_call_child(&self, parent: &InvocationId, index: u32) -> Option<&InvocationId> {
        match self {
            EntryKind::Call { target, child, .. }
                if *child == InvocationId::child(parent, index, &target.service) =>
            {
                Some(child)
            }
            _ => None,
        }
    }

    /// The child invocation of a call or send.
    pub fn child(&self) -> Option<&InvocationId> {
        match self {
            EntryKind::Call { child, .. } | EntryKind::Send { child, .. } => Some(child),
            _ => None,
        }
    }
}

/// What a finished invocation changes in its object's state: the journal's state entries
/// folded in order. `clear_all` first removes every stored key, then `changes` apply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDelta {
    /// Remove every stored key before applying `changes`.
    pub clear_all: bool,
    /// The last value set per key (`None`: cleared).
    pub changes: std::collections::BTreeMap<String, Option<serde_json::Value>>,
}

impl StateDelta {
    /// Folds the state entries of `journal` (in index order).
    pub fn from_journal<'a>(journal: impl IntoIterator<Item = &'a JournalEntry>) -> Self {
        let mut entries: Vec<&JournalEntry> = journal.into_iter().collect();
        entries.sort_by_key(|e| e.index);
        let mut delta = StateDelta::default();
        for entry in entries {
            match &entry.kind {
                EntryKind::SetState { name, value } => {
                    delta.changes.insert(name.clone(), Some(value.clone()));
                }
                EntryKind::ClearState { name } => {
                    delta.changes.insert(name.clone(), None);
                }
                EntryKind::ClearAllState => {
                    delta.clear_all = true;
                    delta.changes.clear();
                }
                _ => {}
            }
        }
        delta
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        !self.clear_all && self.changes.is_empty()
    }
}

/// Where an operation sits in the handler's program: the creation index of each enclosing
/// scope from the outermost, then its own creation index in its scope (`[3]`: the fourth
/// operation of the handler itself; `[3, 0]`: the first one inside the scope created fourth).
/// Replay matches operations to entries by it, so operations of concurrent scopes never
/// depend on timing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct OpPath(Vec<u32>);

impl OpPath {
    /// The path of the handler's own scope (no operation).
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// The operation created `seq`-th in the scope at this path.
    pub fn child(&self, seq: u32) -> Self {
        let mut path = self.0.clone();
        path.push(seq);
        Self(path)
    }

    /// The creation indexes, outermost first.
    pub fn segments(&self) -> &[u32] {
        &self.0
    }

    /// Whether this is the path an entry at `index` has when none is stored: an operation of
    /// the handler's own scope whose creation index is its journal index.
    pub fn is_implied_by(&self, index: u32) -> bool {
        self.0 == [index]
    }
}

impl std::fmt::Display for OpPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{seg}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for OpPath {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Ok(Self::root());
        }
        s.split('.')
            .map(|seg| {
                seg.parse::<u32>()
                    .map_err(|_| format!("{s:?} is not an operation path"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

impl Serialize for OpPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OpPath {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One journal entry at a fixed position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Position in the journal, from 0 (a storage slot: entries are matched by `op`).
    pub index: u32,
    /// What was recorded.
    #[serde(flatten)]
    pub kind: EntryKind,
    /// The operation's place in the program, when it is not `[index]` (see [`OpPath`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<OpPath>,
    /// The entry of the same scope whose result the code had received last when it created
    /// this operation. A replay that creates it before receiving that result took another
    /// path through concurrent branches, and fails instead of handing results to the wrong
    /// branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u32>,
    /// For sleeps and awakeables: the completion, once it arrived (a fired timer completes
    /// with `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion: Option<StepResult>,
    /// When the completion was written (ms since the Unix epoch): a select replayed after
    /// several candidates completed picks the one that completed first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at_ms: Option<u64>,
    /// For calls and sends: the orchestrator has created the child invocation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dispatched: bool,
    /// For steps: when the attempt that recorded it started running its closure (ms since
    /// the Unix epoch), so that a timeline can show how long the step took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
}

impl JournalEntry {
    /// The failure this entry recorded or was completed with, if any.
    pub fn failure(&self) -> Option<&TerminalFailure> {
        let result = match &self.kind {
            EntryKind::Run { result, .. } | EntryKind::Scope { result, .. } => Some(result),
            _ => self.completion.as_ref(),
        };
        match result {
            Some(StepResult::Failure(f)) => Some(f),
            _ => None,
        }
    }

    /// Whether a cancellation reached the handler through this entry (an await completed
    /// with it, or a step that recorded it instead of running).
    pub fn carries_cancellation(&self) -> bool {
        self.failure().is_some_and(TerminalFailure::is_cancelled)
    }

    /// An entry without completion.
    pub fn new(index: u32, kind: EntryKind) -> Self {
        Self {
            index,
            kind,
            op: None,
            after: None,
            completion: None,
            completed_at_ms: None,
            dispatched: false,
            started_at_ms: None,
        }
    }

    /// The operation path of this entry (stored, or implied by its index).
    pub fn op_path(&self) -> OpPath {
        self.op
            .clone()
            .unwrap_or_else(|| OpPath::root().child(self.index))
    }

    /// The result this entry resolves to, if it has one yet.
    pub fn resolved(&self) -> Option<&StepResult> {
        match &self.kind {
            EntryKind::Run { result, .. } | EntryKind::Scope { result, .. } => Some(result),
            _ => self.completion.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_awakeables_deadline_is_its_timeout_or_a_heartbeat_timeout_after_its_last_beat() {
        let t = super::AwakeableTimeout {
            created_at_ms: 1_000,
            until_ms: Some(10_000),
            heartbeat_ms: Some(2_000),
        };
        assert_eq!(t.deadline(None), 3_000, "created, no beat yet");
        assert_eq!(t.deadline(Some(5_000)), 7_000, "moved on by a beat");
        assert_eq!(t.deadline(Some(9_500)), 10_000, "never past the timeout");
        assert_eq!(
            t.deadline(Some(10)),
            3_000,
            "a beat before creation counts as creation"
        );
        let only_timeout = super::AwakeableTimeout {
            heartbeat_ms: None,
            ..t
        };
        assert_eq!(only_timeout.deadline(Some(9_999)), 10_000);
    }

    use super::*;

    #[test]
    fn entries_round_trip_through_json() {
        let e = JournalEntry::new(
            3,
            EntryKind::Run {
                name: "charge".into(),
                result: StepResult::Value(serde_json::json!({"ok": true})),
            },
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["kind"], "run");
        assert_eq!(json["index"], 3);
        assert_eq!(serde_json::from_value::<JournalEntry>(json).unwrap(), e);
    }

    #[test]
    fn op_paths_print_parse_and_default_to_the_index() {
        let p = OpPath::root().child(3).child(0).child(12);
        assert_eq!(p.to_string(), "3.0.12");
        assert_eq!("3.0.12".parse::<OpPath>().unwrap(), p);
        assert_eq!("".parse::<OpPath>().unwrap(), OpPath::root());
        assert!("3..1".parse::<OpPath>().is_err());
        assert!(OpPath::root().child(4).is_implied_by(4));
        assert!(!p.is_implied_by(3));
        let mut e = JournalEntry::new(
            7,
            EntryKind::Awakeable {
                name: "a".into(),
                timeout: None,
            },
        );
        assert_eq!(e.op_path(), OpPath::root().child(7));
        e.op = Some(p.clone());
        e.after = Some(2);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["op"], "3.0.12");
        assert_eq!(serde_json::from_value::<JournalEntry>(json).unwrap(), e);
    }

    #[test]
    fn same_command_compares_kind_and_name_only() {
        let a = EntryKind::Run {
            name: "x".into(),
            result: StepResult::Value(1.into()),
        };
        let b = EntryKind::Run {
            name: "x".into(),
            result: StepResult::Value(2.into()),
        };
        let c = EntryKind::Run {
            name: "y".into(),
            result: StepResult::Value(1.into()),
        };
        assert!(a.same_command(&b));
        assert!(!a.same_command(&c));
        let s1 = EntryKind::Select {
            of: vec![1, 2],
            winner: 1,
        };
        let s2 = EntryKind::Select {
            of: vec![1, 2],
            winner: 2,
        };
        let s3 = EntryKind::Select {
            of: vec![1, 3],
            winner: 1,
        };
        assert!(s1.same_command(&s2));
        assert!(!s1.same_command(&s3));
        let sleep = EntryKind::Sleep {
            name: "x".into(),
            wake_at_ms: 5,
        };
        assert!(!a.same_command(&sleep));
    }

    #[test]
    fn state_entries_fold_in_index_order() {
        let set = |i, n: &str, v: i64| {
            JournalEntry::new(
                i,
                EntryKind::SetState {
                    name: n.into(),
                    value: v.into(),
                },
            )
        };
        let journal = vec![
            set(3, "a", 3),
            set(0, "a", 1),
            set(1, "b", 1),
            JournalEntry::new(2, EntryKind::ClearAllState),
            JournalEntry::new(4, EntryKind::ClearState { name: "c".into() }),
        ];
        let delta = StateDelta::from_journal(&journal);
        assert!(delta.clear_all);
        assert_eq!(delta.changes.len(), 2);
        assert_eq!(delta.changes["a"], Some(3.into()));
        assert_eq!(delta.changes["c"], None);
        assert!(StateDelta::from_journal(&[]).is_empty());
    }

    #[test]
    fn keyed_targets_display_their_key() {
        let t = Target {
            service: ServiceName::new("cart").unwrap(),
            key: Some(ObjectKey::new("ada").unwrap()),
            handler: HandlerName::new("add").unwrap(),
        };
        assert_eq!(t.display(), "cart/ada/add");
    }

    #[test]
    fn completions_resolve_later_kinds() {
        let mut e = JournalEntry::new(
            0,
            EntryKind::Awakeable {
                name: "approval".into(),
                timeout: None,
            },
        );
        assert_eq!(e.resolved(), None);
        e.completion = Some(StepResult::Value(serde_json::json!("yes")));
        assert_eq!(
            e.resolved(),
            Some(&StepResult::Value(serde_json::json!("yes")))
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(serde_json::from_value::<JournalEntry>(json).unwrap(), e);
    }
}
