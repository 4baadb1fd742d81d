//! Listing invocations newest first, without an index write on the happy path.
//!
//! Every invocation belongs to a minute: a dated id's metadata item lives in its minute's
//! partitions (`run#<service>#<minute>#<shard>`, 8 shards), and any other id (keyed,
//! idempotent, children of calls) is put in the keys-only `runs` index under the same partition
//! names once, when it is created. The sweep, which reads every minute's dated partitions
//! anyway, also reads the minute's `runs` partitions and records the minutes in which it found
//! anything in one item per service and hour (`busy`/`<service>#<hour>`): one write per busy
//! minute and service, whatever the traffic. A listing reads those items for its window and
//! only the busy minutes' partitions, plus the minutes the sweep has not reached yet.
//!
//! The order is (minute, created, id), newest first; a cursor is the last position returned,
//! and a page may end early (with a cursor) when its time budget runs out.

use crate::attrs::{get_s, n, s};
use crate::invocations::{Invocation, InvocationStore};
use crate::keys;
use crate::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use durable_protocol::clock::now_millis;
use durable_protocol::{HandlerName, InvocationId, ObjectKey, ServiceName, Status};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long past its hour a busy-minute item is kept beyond the retention: the items it
/// points at may carry their TTL from their finish, up to the journal grace later.
const BUSY_GRACE: Duration = Duration::from_secs(2 * 86_400);

/// How many minutes a page reads at once.
const CONCURRENT_MINUTES: usize = 4;

/// A place in the listing order, newest first: a page continues strictly below it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub minute: u32,
    pub created_at: u64,
    pub id: String,
}

impl Position {
    /// Everything in minutes before `minute`.
    pub fn below_minute(minute: u32) -> Self {
        Self {
            minute,
            created_at: 0,
            id: String::new(),
        }
    }

    /// The position of a listed invocation.
    pub fn of(inv: &Invocation) -> Self {
        Self {
            minute: inv.list_minute(),
            created_at: inv.times.created_at,
            id: inv.id.as_str().to_owned(),
        }
    }

    /// The opaque cursor string of this position (URL-safe).
    pub fn to_cursor(&self) -> String {
        let text = format!("{:x}.{:x}.{}", self.minute, self.created_at, self.id);
        hex(text.as_bytes())
    }

    /// Parses a cursor made by [`Position::to_cursor`].
    pub fn from_cursor(cursor: &str) -> Result<Self, String> {
        let bad = || format!("cursor {cursor:?} is not one this API returned");
        let bytes = unhex(cursor).ok_or_else(bad)?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let mut parts = text.splitn(3, '.');
        let minute = parts.next().and_then(|m| u32::from_str_radix(m, 16).ok());
        let created = parts.next().and_then(|c| u64::from_str_radix(c, 16).ok());
        let id = parts
            .next()
            .filter(|i| i.is_empty() || InvocationId::parse(i).is_ok());
        match (minute, created, id) {
            (Some(minute), Some(created_at), Some(id)) => Ok(Self {
                minute,
                created_at,
                id: id.to_owned(),
            }),
            _ => Err(bad()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > 400 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What to list.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// The services to look in (all registered ones when the caller gave none).
    pub services: Vec<ServiceName>,
    pub handler: Option<HandlerName>,
    /// Any of these statuses (empty: any status).
    pub statuses: Vec<Status>,
    pub key: Option<ObjectKey>,
    /// Created at or after (ms).
    pub since_ms: u64,
    /// Created at or before (ms).
    pub until_ms: u64,
    pub limit: usize,
    /// Continue strictly below this position.
    pub after: Option<Position>,
    /// Stop walking minutes at this time (ms) and answer with what was found and a cursor.
    pub deadline_ms: u64,
}

impl ListQuery {
    fn matches(&self, inv: &Invocation) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&inv.status))
            && self.handler.as_ref().is_none_or(|h| *h == inv.handler)
            && self
                .key
                .as_ref()
                .is_none_or(|k| inv.key.as_ref() == Some(k))
            && (self.since_ms..=self.until_ms).contains(&inv.times.created_at)
            && self.after.as_ref().is_none_or(|p| Position::of(inv) < *p)
    }
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub invocations: Vec<Invocation>,
    /// Where the next page starts, if there may be more.
    pub next: Option<Position>,
    /// How many minutes' partitions this page read (for cost reports).
    pub minutes_read: usize,
}

/// Which kinds of invocations a service had in a minute, as the sweep found them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Busy {
    pub dated: bool,
    pub indexed: bool,
}

impl InvocationStore {
    /// The ids in one `runs` index partition (a service's minute and shard): invocations with
    /// ids that are not dated, made in that minute. Eventually consistent.
    pub async fn indexed_in_minute(
        &self,
        service: &ServiceName,
        minute: u32,
        shard: u8,
    ) -> Result<Vec<InvocationId>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::RUNS_INDEX)
            .key_condition_expression("list_pk = :pk")
            .expression_attribute_values(":pk", s(keys::run_pk(service.as_str(), minute, shard)));
        Ok(crate::batch::query_all(query)
            .await?
            .iter()
            .filter_map(|i| InvocationId::parse(get_s(i, keys::LIST_SK)?).ok())
            .collect())
    }

    /// Records that `service` had invocations in `minute` (the sweep, once per busy minute):
    /// adding to a set, so a second sweep of the minute changes nothing.
    pub async fn mark_busy(
        &self,
        service: &ServiceName,
        minute: u32,
        busy: Busy,
        retention: Duration,
    ) -> Result<(), StoreError> {
        let mut adds = Vec::new();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::busy_key_item(service.as_str(), minute / 60)));
        if busy.dated {
            adds.push("#dated :m");
        }
        if busy.indexed {
            adds.push("#indexed :m");
        }
        if adds.is_empty() {
            return Ok(());
        }
        let hour_end_s = (u64::from(minute / 60) + 1) * 3600;
        if busy.dated {
            update = update.expression_attribute_names("#dated", "dated");
        }
        if busy.indexed {
            update = update.expression_attribute_names("#indexed", "indexed");
        }
        update = update
            .update_expression(format!("ADD {} SET expires_at = :exp", adds.join(", ")))
            .expression_attribute_values(":m", AttributeValue::Ns(vec![minute.to_string()]))
            .expression_attribute_values(
                ":exp",
                n(hour_end_s + retention.as_secs() + BUSY_GRACE.as_secs()),
            );
        update
            .send()
            .await
            .map_err(|e| StoreError::dynamo("UpdateItem", e))?;
        Ok(())
    }

    /// The busy minutes of `service` between `from` and `to` (inclusive), as the sweep recorded
    /// them: one query over the hours' items.
    pub async fn busy_minutes(
        &self,
        service: &ServiceName,
        from: u32,
        to: u32,
    ) -> Result<BTreeMap<u32, Busy>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(keys::BUSY_PK))
            .expression_attribute_values(":from", s(keys::busy_sk(service.as_str(), from / 60)))
            .expression_attribute_values(":to", s(keys::busy_sk(service.as_str(), to / 60)));
        let mut minutes: BTreeMap<u32, Busy> = BTreeMap::new();
        for item in crate::batch::query_all(query).await? {
            for (attr, dated) in [("dated", true), ("indexed", false)] {
                let Some(AttributeValue::Ns(set)) = item.get(attr) else {
                    continue;
                };
                for m in set.iter().filter_map(|m| m.parse::<u32>().ok()) {
                    let busy = minutes.entry(m).or_default();
                    if dated {
                        busy.dated = true;
                    } else {
                        busy.indexed = true;
                    }
                }
            }
        }
        Ok(minutes)
    }

    /// Every invocation of `service` made in `minute` of the kinds `busy` names (eventually
    /// consistent: a listing is a snapshot).
    async fn minute_invocations(
        &self,
        service: &ServiceName,
        minute: u32,
        busy: Busy,
    ) -> Result<Vec<Invocation>, StoreError> {
        let shards = 0..InvocationId::SHARDS;
        let dated = futures::future::try_join_all(shards.clone().filter(|_| busy.dated).map(
            |shard| async move {
                let mut all = Vec::new();
                let mut page = None;
                loop {
                    let (found, next) = self.minute_page(service, minute, shard, page).await?;
                    all.extend(found);
                    match next {
                        Some(n) => page = Some(n),
                        None => return Ok::<_, StoreError>(all),
                    }
                }
            },
        ));
        let indexed = futures::future::try_join_all(
            shards
                .filter(|_| busy.indexed)
                .map(|shard| self.indexed_in_minute(service, minute, shard)),
        );
        let (dated, indexed) = futures::future::try_join(dated, indexed).await?;
        let ids: Vec<InvocationId> = indexed.into_iter().flatten().collect();
        let mut found: Vec<Invocation> = dated.into_iter().flatten().collect();
        if !ids.is_empty() {
            found.extend(self.get_many(&ids).await?);
        }
        Ok(found)
    }

    /// One page of invocations matching `query`, newest first. `swept_until` is the last
    /// minute the sweep has recorded busy minutes for: later minutes are read whole.
    pub async fn list(
        &self,
        query: &ListQuery,
        swept_until: Option<u32>,
    ) -> Result<ListPage, StoreError> {
        let bottom = (query.since_ms / 60_000) as u32;
        let mut top = (query.until_ms / 60_000) as u32;
        if let Some(after) = &query.after {
            let whole_minute = after.created_at == 0 && after.id.is_empty();
            top = top.min(match whole_minute {
                true => after.minute.saturating_sub(1),
                false => after.minute,
            });
        }
        // The sweep's marks cover the minutes up to its cursor; later ones are read whole.
        let mut busy: Vec<BTreeMap<u32, Busy>> = Vec::new();
        for service in &query.services {
            busy.push(match swept_until.map(|s| s.min(top)) {
                Some(marked) if marked >= bottom => {
                    self.busy_minutes(service, bottom, marked).await?
                }
                _ => BTreeMap::new(),
            });
        }
        let unswept = |minute: u32| swept_until.is_none_or(|s| minute > s);
        // The minutes to read, newest first, each with what to read for each service.
        let mut minutes: BTreeSet<u32> = BTreeSet::new();
        for map in &busy {
            minutes.extend(map.range(bottom..=top).map(|(m, _)| *m));
        }
        let first_unswept = swept_until.map_or(bottom, |s| (s + 1).max(bottom));
        if first_unswept <= top {
            minutes.extend(first_unswept..=top);
        }
        let mut out: Vec<Invocation> = Vec::new();
        let mut minutes_read = 0;
        let minutes: Vec<u32> = minutes.into_iter().rev().collect();
        // A few minutes are read at once: most pages need more than one.
        for chunk in minutes.chunks(CONCURRENT_MINUTES) {
            if now_millis() > query.deadline_ms && minutes_read > 0 {
                return Ok(ListPage {
                    invocations: out,
                    next: Some(Position::below_minute(chunk[0] + 1)),
                    minutes_read,
                });
            }
            let found = futures::future::try_join_all(chunk.iter().map(|&minute| {
                let reads: Vec<_> = query
                    .services
                    .iter()
                    .zip(&busy)
                    .filter_map(|(service, map)| {
                        let what = match unswept(minute) {
                            true => Busy {
                                dated: true,
                                indexed: true,
                            },
                            false => map.get(&minute).copied()?,
                        };
                        Some(self.minute_invocations(service, minute, what))
                    })
                    .collect();
                futures::future::try_join_all(reads)
            }))
            .await?;
            for (&minute, found) in chunk.iter().zip(found) {
                let mut found: Vec<Invocation> = found
                    .into_iter()
                    .flatten()
                    .filter(|inv| query.matches(inv))
                    .collect();
                minutes_read += 1;
                found.sort_by_key(|inv| std::cmp::Reverse(Position::of(inv)));
                let room = query.limit - out.len();
                let more = found.len() > room;
                out.extend(found.into_iter().take(room));
                if out.len() == query.limit {
                    let next = match more {
                        true => out.last().map(Position::of),
                        // The page ends with the minute: the next one starts below it.
                        false => (minute > bottom).then(|| Position::below_minute(minute)),
                    };
                    return Ok(ListPage {
                        invocations: out,
                        next,
                        minutes_read,
                    });
                }
            }
        }
        Ok(ListPage {
            invocations: out,
            next: None,
            minutes_read,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let id = InvocationId::dated(&ServiceName::new("svc").unwrap(), 1_764_000_000_000);
        let p = Position {
            minute: 29_400_000,
            created_at: 1_764_000_000_123,
            id: id.as_str().to_owned(),
        };
        assert_eq!(Position::from_cursor(&p.to_cursor()).unwrap(), p);
        let below = Position::below_minute(7);
        assert_eq!(Position::from_cursor(&below.to_cursor()).unwrap(), below);
        for bad in ["", "zz", "abc", &hex(b"1.2.not-an-id"), &hex(b"x.2.")] {
            assert!(Position::from_cursor(bad).is_err(), "{bad:?}");
        }
        assert!(below < p, "a minute's start sorts below its invocations");
    }
}
