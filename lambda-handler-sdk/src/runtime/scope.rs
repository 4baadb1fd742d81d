//! Operation numbering by scope: each scope (the handler itself, each `ctx.scope`, each item
//! of a map or branch of a parallel) numbers the operations created in it from 0, so an
//! operation's path ([`OpPath`]) never depends on how concurrent scopes interleave. Replay
//! finds an operation's entry by its path; a new operation takes the next free journal index.
//!
//! Each scope also remembers the last of its operations whose result the code received, which
//! a new entry records as `after`. That makes plain `tokio::join!` of multi-step branches in
//! one scope replay the first attempt's interleaving: a replay hands a recorded result to the
//! code only once the operations created before it was first received exist again (so the
//! branch that receives it creates its next operation at the same position), and an operation
//! created before the result it was recorded after fails the attempt as non-deterministic
//! instead of taking another branch's entry.

use durable_protocol::{JournalEntry, OpPath, TerminalFailure};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// One scope's numbering.
#[derive(Debug)]
pub(crate) struct Scope {
    /// The path of the scope's own operation (empty for the handler's scope).
    path: OpPath,
    /// The creation index the next operation gets.
    next_seq: AtomicU32,
    /// The journal index of the last operation of this scope whose result the code received.
    last_received: Mutex<Option<u32>>,
    /// How many random generators the scope made.
    next_rng: AtomicU32,
    /// Notified whenever an operation is created in the scope (gated receipts wait for it).
    created: tokio::sync::Notify,
}

impl Scope {
    /// The handler's own scope.
    pub(crate) fn root() -> Self {
        Self::at(OpPath::root())
    }

    /// The scope of the operation at `path`.
    pub(crate) fn at(path: OpPath) -> Self {
        Self {
            path,
            next_seq: AtomicU32::new(0),
            last_received: Mutex::new(None),
            next_rng: AtomicU32::new(0),
            created: tokio::sync::Notify::new(),
        }
    }

    /// The path of the scope's own operation.
    pub(crate) fn path(&self) -> &OpPath {
        &self.path
    }

    /// Takes the next creation index.
    fn next(&self) -> u32 {
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        self.created.notify_waiters();
        seq
    }

    /// Waits until the scope has created `count` operations.
    async fn created_at_least(&self, count: u32) {
        loop {
            let created = self.created.notified();
            tokio::pin!(created);
            created.as_mut().enable();
            if self.next_seq.load(Ordering::SeqCst) >= count {
                return;
            }
            created.await;
        }
    }

    /// Takes `count` creation indexes at once (the items of a map), returning the first.
    pub(crate) fn reserve(&self, count: u32) -> u32 {
        self.next_seq.fetch_add(count, Ordering::SeqCst)
    }

    /// Takes the next random generator's number.
    pub(crate) fn next_rng(&self) -> u32 {
        self.next_rng.fetch_add(1, Ordering::SeqCst)
    }

    fn last_received(&self) -> Option<u32> {
        *self.last_received.lock().expect("scope poisoned")
    }
}

/// What an allocated operation writes beside its kind.
#[derive(Debug, Clone)]
struct Placement {
    path: OpPath,
    after: Option<u32>,
}

/// The journal indexes of one attempt: recorded ones by path, fresh ones after the last
/// recorded, and what each allocated operation records.
pub(crate) struct Numbering {
    by_path: HashMap<OpPath, u32>,
    /// For a recorded entry that later entries of its scope were created after: how many
    /// operations its scope had created when the code first received its result.
    gates: HashMap<u32, u32>,
    next_fresh: AtomicU32,
    placed: Mutex<HashMap<u32, Placement>>,
    /// Entries whose results the code received in this attempt.
    received: Mutex<HashSet<u32>>,
    /// Whether the journal had entries and no operation was new yet.
    replaying: std::sync::atomic::AtomicBool,
}

impl Numbering {
    pub(crate) fn new(journal: &[JournalEntry]) -> Self {
        let mut gates: HashMap<u32, u32> = HashMap::new();
        for entry in journal {
            if let (Some(before), Some(&seq)) = (entry.after, entry.op_path().segments().last()) {
                let gate = gates.entry(before).or_insert(seq);
                *gate = (*gate).min(seq);
            }
        }
        Self {
            gates,
            by_path: journal.iter().map(|e| (e.op_path(), e.index)).collect(),
            next_fresh: AtomicU32::new(journal.iter().map(|e| e.index + 1).max().unwrap_or(0)),
            placed: Mutex::new(HashMap::new()),
            received: Mutex::new(HashSet::new()),
            replaying: std::sync::atomic::AtomicBool::new(!journal.is_empty()),
        }
    }

    /// Whether the code is still replaying recorded operations: true from the start of an
    /// attempt that has a journal until it creates the first operation the journal lacks.
    pub(crate) fn is_replaying(&self) -> bool {
        self.replaying.load(Ordering::SeqCst)
    }

    /// The journal index of the next operation of `scope`: the recorded one, or the next fresh
    /// index. Fails (with the index) if the recorded operation was created after a result this
    /// attempt has not received yet.
    pub(crate) fn allocate<'r>(
        &self,
        scope: &Scope,
        recorded: impl Fn(u32) -> Option<&'r JournalEntry>,
    ) -> Result<u32, (u32, TerminalFailure)> {
        let seq = scope.next();
        let after = scope.last_received();
        if let Some(&index) = self.by_path.get(&scope.path.child(seq)) {
            let entry = recorded(index).expect("paths index recorded entries");
            if let Some(before) = entry.after {
                if !self
                    .received
                    .lock()
                    .expect("received poisoned")
                    .contains(&before)
                {
                    return Err((index, out_of_order(entry, before)));
                }
            }
        }
        Ok(self.place(scope, seq, after))
    }

    /// The journal index of the operation at creation index `seq` of `scope`, reserved
    /// earlier (a map's items): where it sits does not depend on when it is created, so it
    /// records no predecessor.
    pub(crate) fn allocate_reserved(&self, scope: &Scope, seq: u32) -> u32 {
        self.place(scope, seq, None)
    }

    fn place(&self, scope: &Scope, seq: u32, after: Option<u32>) -> u32 {
        let path = scope.path.child(seq);
        let index = match self.by_path.get(&path) {
            Some(&index) => index,
            None => {
                self.replaying.store(false, Ordering::SeqCst);
                self.next_fresh.fetch_add(1, Ordering::SeqCst)
            }
        };
        self.placed
            .lock()
            .expect("placed poisoned")
            .insert(index, Placement { path, after });
        index
    }

    /// Waits until the code may receive the result of entry `index` of `scope`: when the first
    /// attempt received it, later entries of the scope were created after it, and the scope
    /// had created a number of operations then; this replay hands it over once it has too.
    pub(crate) async fn may_receive(&self, scope: &Scope, index: u32) {
        if let Some(&count) = self.gates.get(&index) {
            scope.created_at_least(count).await;
        }
    }

    /// Whether receiving entry `index` waits for other operations to be created first.
    pub(crate) fn is_gated(&self, scope: &Scope, index: u32) -> bool {
        self.gates
            .get(&index)
            .is_some_and(|&count| scope.next_seq.load(Ordering::SeqCst) < count)
    }

    /// The code received the result of entry `index` of `scope`.
    pub(crate) fn received(&self, scope: &Scope, index: u32) {
        self.received
            .lock()
            .expect("received poisoned")
            .insert(index);
        *scope.last_received.lock().expect("scope poisoned") = Some(index);
    }

    /// A new entry for the operation allocated at `index`, with its path and predecessor.
    pub(crate) fn entry(&self, index: u32, kind: durable_protocol::EntryKind) -> JournalEntry {
        let mut entry = JournalEntry::new(index, kind);
        if let Some(p) = self.placed.lock().expect("placed poisoned").get(&index) {
            entry.op = (!p.path.is_implied_by(index)).then(|| p.path.clone());
            entry.after = p.after;
        }
        entry
    }

    /// Whether `recorded` (found at an index this attempt allocated) is the same operation:
    /// a concurrent attempt numbering new operations of concurrent scopes in another order may
    /// have put another one there.
    pub(crate) fn same_operation(&self, recorded: &JournalEntry) -> bool {
        self.placed
            .lock()
            .expect("placed poisoned")
            .get(&recorded.index)
            .is_none_or(|p| p.path == recorded.op_path())
    }

    /// The path of the operation allocated at `index`.
    pub(crate) fn path_of(&self, index: u32) -> Option<OpPath> {
        self.placed
            .lock()
            .expect("placed poisoned")
            .get(&index)
            .map(|p| p.path.clone())
    }
}

fn out_of_order(entry: &JournalEntry, before: u32) -> TerminalFailure {
    TerminalFailure::new(
        TerminalFailure::NON_DETERMINISM,
        format!(
            "non-deterministic replay at journal entry {} ({} {:?}): the first attempt created \
             it after receiving the result of entry {before}, this replay creates it before. \
             Concurrently running branches created durable operations in an order that \
             depends on timing (e.g. `tokio::join!` over branches that each await several \
             operations); run each branch in its own `ctx.scope`, or use `ctx.parallel` or \
             `ctx.map`",
            entry.index,
            entry.kind.label(),
            entry.kind.name()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_protocol::{EntryKind, StepResult};

    fn run(index: u32, op: Option<&str>, after: Option<u32>) -> JournalEntry {
        let mut e = JournalEntry::new(
            index,
            EntryKind::Run {
                name: "x".into(),
                result: StepResult::Value(index.into()),
            },
        );
        e.op = op.map(|p| p.parse().unwrap());
        e.after = after;
        e
    }

    #[test]
    fn recorded_operations_keep_their_index_and_new_ones_follow_the_last() {
        let journal = vec![run(0, None, None), run(1, Some("0.0"), None)];
        let n = Numbering::new(&journal);
        let find = |i: u32| journal.iter().find(|e| e.index == i);
        let root = Scope::root();
        assert_eq!(n.allocate(&root, find), Ok(0));
        let inner = Scope::at(OpPath::root().child(0));
        assert_eq!(n.allocate(&inner, find), Ok(1));
        assert_eq!(n.allocate(&inner, find), Ok(2), "fresh after the last");
        assert_eq!(
            n.allocate_reserved(&inner, 7),
            3,
            "fresh, out of creation order"
        );
        let e = n.entry(
            3,
            EntryKind::Awakeable {
                name: "a".into(),
                timeout: None,
            },
        );
        assert_eq!((e.op, e.after), (Some("0.7".parse().unwrap()), None));
        assert_eq!(n.allocate(&root, find), Ok(4));
        let e = n.entry(
            2,
            EntryKind::Awakeable {
                name: "a".into(),
                timeout: None,
            },
        );
        assert_eq!(e.op, Some("0.1".parse().unwrap()));
        let e = n.entry(
            4,
            EntryKind::Awakeable {
                name: "a".into(),
                timeout: None,
            },
        );
        assert_eq!(
            e.op,
            Some("1".parse().unwrap()),
            "the second of the root, at index 4"
        );
        let e = n.entry(
            0,
            EntryKind::Awakeable {
                name: "a".into(),
                timeout: None,
            },
        );
        assert_eq!(e.op, None, "implied by its index");
    }

    #[test]
    fn an_operation_created_before_its_recorded_predecessor_completed_is_refused() {
        let journal = vec![
            run(0, None, None),
            run(1, None, None),
            run(2, None, Some(1)),
            run(3, None, Some(0)),
        ];
        let find = |i: u32| journal.iter().find(|e| e.index == i);
        let n = Numbering::new(&journal);
        let root = Scope::root();
        assert_eq!(n.allocate(&root, find), Ok(0));
        assert_eq!(n.allocate(&root, find), Ok(1));
        n.received(&root, 0);
        let (index, failure) = n.allocate(&root, find).unwrap_err();
        assert_eq!(index, 2);
        assert_eq!(failure.code, TerminalFailure::NON_DETERMINISM);
        assert!(failure.message.contains("ctx.scope"), "{}", failure.message);
    }

    #[tokio::test]
    async fn a_recorded_result_is_handed_over_once_what_was_created_before_it_exists() {
        // First attempt: a1 (0) and b1 (1) created; b1 received, b2 (2) created; a1
        // received, a2 (3) created. So a1 waits for three operations to exist.
        let journal = vec![
            run(0, None, None),
            run(1, None, None),
            run(2, None, Some(1)),
            run(3, None, Some(0)),
        ];
        let n = Numbering::new(&journal);
        let root = Scope::root();
        let find = |i: u32| journal.iter().find(|e| e.index == i);
        n.allocate(&root, find).unwrap();
        assert!(n.is_gated(&root, 0));
        let waiting = n.may_receive(&root, 0);
        tokio::pin!(waiting);
        assert!(futures_poll_once(waiting.as_mut()).await.is_pending());
        n.allocate(&root, find).unwrap();
        n.received(&root, 1);
        n.allocate(&root, find).unwrap();
        assert!(!n.is_gated(&root, 0));
        waiting.await;
        n.received(&root, 0);
        assert_eq!(n.allocate(&root, find), Ok(3));
    }

    /// Polls `fut` once.
    async fn futures_poll_once<F: std::future::Future + Unpin>(
        fut: F,
    ) -> std::task::Poll<F::Output> {
        let mut fut = fut;
        std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut fut).poll(cx)))
            .await
    }
}
