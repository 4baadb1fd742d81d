//! `dispatch`: creating (once) and starting the child of a recorded call or send.

use crate::control::reports as replies;
use crate::driver::{LambdaCall, Push, Wait, LEASE_MARGIN};
use crate::error::OrchestratorError;
use crate::services::Services;
use durable_protocol::clock::now_millis;
use durable_protocol::crash_point;
use durable_protocol::trace::TraceParent;
use durable_protocol::{HandlerKind, InvocationId, ServiceKind, StepResult, TerminalFailure};
use durable_store::invocations::{
    Caller, Created, Invocation, Joined, NewInvocation, Outcome, MAX_WAITERS,
};

impl Services {
    /// A call or send entry of `parent` was recorded: create its child (and, first, the children
    /// of the parent's earlier calls and sends, so children start in program order), then drive
    /// it. Creating a child is a conditional put on its derived id: however often a dispatch
    /// arrives, there is one child.
    pub(crate) async fn dispatch_entry(
        &self,
        parent: &InvocationId,
        index: u32,
        call: &LambdaCall,
    ) -> Result<serde_json::Value, OrchestratorError> {
        let journal = self.journal.load(parent).await?;
        let Some(entry) = journal.iter().find(|e| e.index == index).cloned() else {
            tracing::warn!(%parent, index, "dispatch of an unknown entry");
            return replies::report(&replies::DispatchReport {
                invocation_id: Some(parent),
                entry: None,
                child: None,
                status: Some("unknown entry"),
            });
        };
        crash_point!("dispatch.loaded");
        // Earlier calls and sends not started yet go first; their own dispatch drives them.
        let earlier_created = self
            .create_undispatched(parent, &journal, index, call)
            .await?;
        let lease = call.deadline_ms + LEASE_MARGIN.as_millis() as u64;
        let created = self.create_child(parent, &entry, lease, call).await?;
        let killed = self.kill_orphans(parent, &journal, index, call).await?;
        // The children of sends are delivered either way; a killed child's drive does nothing.
        for child in earlier_created {
            self.send_event(&self.signing.drive(child)).await?;
        }
        if killed && entry.kind.child_start().is_some_and(|s| s.awaited) {
            return replies::report(&replies::DispatchReport {
                invocation_id: Some(parent),
                entry: Some(index),
                child: None,
                status: Some("parent killed"),
            });
        }
        match created {
            Some(child) => {
                crash_point!("dispatch.child.marked");
                let driven = self.drive(child, call, Push::First).await?;
                Ok(replies::report(&replies::DispatchReport {
                    invocation_id: Some(parent),
                    entry: Some(index),
                    child: Some(driven.name()),
                    status: None,
                })?)
            }
            None => {
                // It existed: finish what a crashed dispatch may have left undone.
                let Some(start) = entry.kind.child_start() else {
                    return replies::report(&replies::DispatchReport {
                        invocation_id: None,
                        entry: None,
                        child: None,
                        status: Some("not a call"),
                    });
                };
                let Some(child) = self.invocations.get(start.child).await? else {
                    return replies::report(&replies::DispatchReport {
                        invocation_id: None,
                        entry: None,
                        child: None,
                        status: Some("no child"),
                    });
                };
                let caller = Caller {
                    invocation: parent.clone(),
                    entry: index,
                };
                match &child.outcome {
                    // Its own child; a shared one told this caller when it joined its waiters.
                    Some(outcome) if child.caller.as_ref() == Some(&caller) => {
                        self.tell_caller(&caller, outcome).await?;
                    }
                    Some(_) => {}
                    None => {
                        self.attach(child, call, Wait::No).await?;
                    }
                }
                Ok(replies::report(&replies::DispatchReport {
                    invocation_id: Some(parent),
                    entry: Some(index),
                    child: Some("existing"),
                    status: None,
                })?)
            }
        }
    }

    /// Creates the children of `parent`'s calls and sends before entry `before` that are not
    /// dispatched yet, in program order; returns those created here, to be driven.
    pub(crate) async fn create_undispatched(
        &self,
        parent: &InvocationId,
        journal: &[durable_protocol::JournalEntry],
        before: u32,
        call: &LambdaCall,
    ) -> Result<Vec<InvocationId>, OrchestratorError> {
        let mut created = Vec::new();
        for earlier in journal.iter().filter(|e| e.index < before && !e.dispatched) {
            if let Some(child) = self.create_child(parent, earlier, 0, call).await? {
                created.push(child.id);
            }
        }
        Ok(created)
    }

    /// A parent killed while its dispatch ran (a zombie attempt recorded a call after the
    /// kill, or the kill's clean-up looked before the child existed): the children of its
    /// unanswered calls up to entry `upto` are killed, so none runs on for nobody. Checked
    /// after the children are created: a kill that came earlier is seen here, one that comes
    /// later finds the children itself.
    async fn kill_orphans(
        &self,
        parent: &InvocationId,
        journal: &[durable_protocol::JournalEntry],
        upto: u32,
        call: &LambdaCall,
    ) -> Result<bool, OrchestratorError> {
        let awaited: Vec<&InvocationId> = journal
            .iter()
            .filter(|e| e.index <= upto && e.completion.is_none())
            .filter_map(|e| e.kind.owned_call_child(parent, e.index))
            .collect();
        // Only a dispatch with an unanswered call pays the read (a send's child is delivered).
        if awaited.is_empty() {
            return Ok(false);
        }
        let killed = self
            .invocations
            .get(parent)
            .await?
            .is_some_and(|p| p.status == durable_protocol::Status::Killed);
        if killed {
            for child in awaited {
                tracing::warn!(%parent, %child, "killing the child of a killed parent");
                Box::pin(self.kill(child, call)).await?;
            }
        }
        Ok(killed)
    }

    /// Creates the child of a call or send entry and marks the entry dispatched; `Some` if this
    /// created it and it should start now. A delayed send's child is created at once but leased
    /// until it is due, and a schedule starts it then, so it never depends on the sender's
    /// journal later. A call to an unknown service or handler completes with a 404.
    pub(crate) async fn create_child(
        &self,
        parent: &InvocationId,
        entry: &durable_protocol::JournalEntry,
        lease_until: u64,
        call: &LambdaCall,
    ) -> Result<Option<Invocation>, OrchestratorError> {
        let Some(start) = entry.kind.child_start() else {
            return Ok(None);
        };
        // Rounded up to the second (schedules have whole seconds), so the child never starts
        // before its due time and its lease ends when the schedule fires.
        let due = start
            .due_at_ms
            .filter(|due| *due > now_millis() + 1000)
            .map(|due| due.div_ceil(1000) * 1000);
        let lease_until = due.unwrap_or(lease_until);
        let (target, input, child, is_call) =
            (start.target, start.input, start.child, start.awaited);
        let registration = self
            .registry
            .lookup(&target.service)
            .await?
            .filter(|r| r.has_handler(&target.handler));
        let run_of_workflow = registration.as_ref().is_some_and(|r| {
            r.kind == ServiceKind::Workflow
                && r.kind_of(&target.handler) == Some(HandlerKind::Workflow)
        });
        // The child's id is the one its caller's entry must name: made from the caller and
        // the entry, in the target's service; for an idempotent call or send, the one its key
        // names for the target (as over HTTP); for a workflow's run, the run of its key.
        // Anything else would let a handler choose which item the orchestrator writes.
        let expected = start.expected_child(parent, entry.index, run_of_workflow);
        // Nothing is written for a target that is not registered, whatever its entry names.
        let refused = match &registration {
            None => Some(TerminalFailure::new(
                404,
                format!("no handler {} is registered", target.display()),
            )),
            Some(_) if start.attach && !run_of_workflow => Some(TerminalFailure::new(
                TerminalFailure::BAD_REQUEST,
                format!(
                    "{}: only a workflow's run can be attached to",
                    target.display()
                ),
            )),
            _ if *child != expected && run_of_workflow => Some(TerminalFailure::new(
                TerminalFailure::BAD_REQUEST,
                format!(
                    "{}: a workflow's run is submitted with ctx.workflow_submit, called with \
                     ctx.workflow_call or waited for with ctx.workflow_attach",
                    target.display()
                ),
            )),
            _ if *child != expected => Some(TerminalFailure::new(
                TerminalFailure::BAD_REQUEST,
                format!(
                    "entry {} of {parent} names child {child}, not {expected}",
                    entry.index
                ),
            )),
            Some(r) => match (r.kind, &target.key) {
                (ServiceKind::Service, Some(_)) => Some(TerminalFailure::new(
                    400,
                    format!("{} is a service: call it without a key", target.service),
                )),
                (ServiceKind::Object | ServiceKind::Workflow, None) => Some(TerminalFailure::new(
                    400,
                    format!("{} is keyed: call it with a key", target.service),
                )),
                _ => None,
            },
        };
        if let Some(failure) = refused {
            return self.refuse(parent, (entry.index, is_call), failure).await;
        }
        let registration = registration.expect("refused when missing");
        let this_caller = is_call.then(|| Caller {
            invocation: parent.clone(),
            entry: entry.index,
        });
        if start.attach {
            // Nothing is created: the run must exist, and this call waits for it.
            let caller = this_caller.as_ref().expect("an attach is a call");
            let joined = self.invocations.add_waiter(child, caller).await?;
            if matches!(joined, Joined::Missing) {
                let failure = TerminalFailure::new(
                    404,
                    format!(
                        "workflow {} has no run for key {}",
                        target.service,
                        target.key.as_ref().map_or("", |k| k.as_str())
                    ),
                );
                return self.refuse(parent, (entry.index, is_call), failure).await;
            }
            self.joined(caller, joined).await?;
            self.journal.mark_dispatched(parent, entry.index).await?;
            return Ok(None);
        }
        let handler_kind = registration.kind_of(&target.handler);
        // A large input was offloaded under the caller's prefix, which the callee (another
        // service, another IAM grant) may not read: it gets a copy under its own.
        let input = match durable_protocol::payload::as_ref(input) {
            Some(r) if !durable_store::keys::service_owns_payload(child.service_str(), &r.key) => {
                let value = self.payloads.resolve(input.clone()).await.map_err(|e| {
                    OrchestratorError::Protocol(format!("reading the input of {child}: {e}"))
                })?;
                self.payloads
                    .offload(child, "input", value)
                    .await
                    .map_err(|e| {
                        OrchestratorError::Protocol(format!("copying the input of {child}: {e}"))
                    })?
            }
            _ => input.clone(),
        };
        // The child runs in its caller's trace and sees its caller's headers (one read of the
        // caller's metadata).
        let caller_meta = self.invocations.get_eventually(parent).await?;
        let (trace, headers) = caller_meta.map_or_else(
            || (TraceParent::of_invocation(parent), Default::default()),
            |p| (p.trace, p.headers),
        );
        let new = NewInvocation {
            id: child.clone(),
            service: target.service.clone(),
            handler: target.handler.clone(),
            function_arn: registration.function_arn,
            retention: registration.retention,
            input,
            idempotency_key: start.idempotency_key.cloned(),
            lease_until,
            released: false,
            caller: this_caller.clone(),
            key: target.key.clone(),
            handler_kind,
            traceparent: Some(trace.child(child)),
            headers,
        };
        if handler_kind == Some(HandlerKind::Exclusive) {
            // Into the object's inbox, due now or when a delayed send is due (a schedule
            // pumps the object then).
            let (arrived, _) = self
                .arrive(&new, due.unwrap_or_else(now_millis), None)
                .await?;
            self.wait_on_existing(&arrived, this_caller.as_ref())
                .await?;
            if let Some(due) = due {
                self.timers
                    .schedule_start(child, due, &call.function_arn)
                    .await?;
            }
            self.journal.mark_dispatched(parent, entry.index).await?;
            return Ok(None);
        }
        let created = self.invocations.create(&new).await?;
        if let Created::New(inv) = &created {
            self.started(inv);
        }
        crash_point!("dispatch.child.created");
        self.wait_on_existing(&created, this_caller.as_ref())
            .await?;
        if let Some(due) = due {
            // Scheduled (again, harmlessly, if it existed) before the entry counts as dispatched.
            self.timers
                .schedule_start(child, due, &call.function_arn)
                .await?;
            self.journal.mark_dispatched(parent, entry.index).await?;
            return Ok(None);
        }
        self.journal.mark_dispatched(parent, entry.index).await?;
        Ok(match created {
            Created::New(inv) => Some(inv),
            Created::Existing(_) => None,
        })
    }

    /// A call whose child existed already, started by someone else (an idempotent call's or a
    /// workflow's run): this caller joins its waiters, and is told at once if the child has
    /// finished, all before its entry counts as dispatched, so a dispatch that dies in
    /// between is repeated by the sweep (completing an entry twice keeps the first).
    async fn wait_on_existing(
        &self,
        created: &Created,
        caller: Option<&Caller>,
    ) -> Result<(), OrchestratorError> {
        let (Created::Existing(child), Some(caller)) = (created, caller) else {
            return Ok(());
        };
        if child.caller.as_ref() == Some(caller) {
            return Ok(());
        }
        let joined = match &child.outcome {
            Some(_) => Joined::Joined(Box::new(child.clone())),
            None => self.invocations.add_waiter(&child.id, caller).await?,
        };
        self.joined(caller, joined).await
    }

    /// After joining a shared child: a finished one's outcome is delivered now; a full one
    /// (too many waiters) fails the call with a terminal `429`.
    async fn joined(&self, caller: &Caller, joined: Joined) -> Result<(), OrchestratorError> {
        crash_point!("dispatch.waiter.added");
        let outcome = match joined {
            Joined::Joined(child) => child.outcome,
            Joined::Full(child) => Some(child.outcome.unwrap_or_else(|| {
                Outcome::Failed(TerminalFailure::new(
                    429,
                    format!(
                        "{} already has {MAX_WAITERS} callers waiting for it",
                        child.id
                    ),
                ))
            })),
            Joined::Missing => None,
        };
        if let Some(outcome) = outcome {
            self.tell_caller(caller, &outcome).await?;
        }
        Ok(())
    }

    /// A call or send that cannot start: its entry is dispatched, and a call completes with
    /// `failure` and its caller is resumed.
    async fn refuse(
        &self,
        parent: &InvocationId,
        (index, is_call): (u32, bool),
        failure: TerminalFailure,
    ) -> Result<Option<Invocation>, OrchestratorError> {
        tracing::warn!(%parent, entry = index, "{}", failure.message);
        self.journal.mark_dispatched(parent, index).await?;
        if is_call {
            self.journal
                .complete(
                    parent,
                    index,
                    durable_protocol::EntryTag::Call,
                    &StepResult::Failure(failure),
                    durable_store::Completer::Other,
                )
                .await?;
            crash_point!("dispatch.refused.completed");
            self.send_event(&self.signing.resume(parent.clone(), index))
                .await?;
        }
        Ok(None)
    }
}
