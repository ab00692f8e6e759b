//! The Raft log and vote, crash-safe in one redb file (`FS_ROOT/raft/log.redb`).
//!
//! redb commits are durable when they return (fsync), so an entry acknowledged to the
//! leader, or a vote granted, survives a crash of the process or the machine.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, StorageIOError};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::types::{Entry, LogId, NodeId, StorageError, TypeConfig, Vote};

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const PURGED: &str = "last_purged";

/// The log store; cheap to clone (one shared database).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

fn io_err(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    StorageError::IO {
        source: StorageIOError::new(subject, verb, openraft::AnyError::new(&e)),
    }
}

impl LogStore {
    pub fn open(path: &Path) -> Result<Self, redb::Error> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(LOGS)?;
        txn.open_table(META)?;
        txn.commit()?;
        Ok(Self { db: Arc::new(db) })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META)?;
        match table.get(key)? {
            Some(value) => Ok(serde_json::from_slice(value.value()).ok()),
            None => Ok(None),
        }
    }

    fn write_meta<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), redb::Error> {
        let bytes = serde_json::to_vec(value).expect("log metadata serializes");
        let txn = self.db.begin_write()?;
        txn.open_table(META)?.insert(key, bytes.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    fn entries(&self, start: Bound<u64>, end: Bound<u64>) -> Result<Vec<Entry>, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LOGS)?;
        let mut out = Vec::new();
        for item in table.range::<u64>((start, end))? {
            let (_, value) = item?;
            let entry: Entry = serde_json::from_slice(value.value())
                .map_err(|e| redb::Error::Corrupted(format!("log entry does not parse: {e}")))?;
            out.push(entry);
        }
        Ok(out)
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LOGS)?;
        match table.last()? {
            Some((_, value)) => {
                let entry: Entry = serde_json::from_slice(value.value())
                    .map_err(|e| redb::Error::Corrupted(format!("log entry does not parse: {e}")))?;
                Ok(Some(entry.log_id))
            }
            None => Ok(None),
        }
    }

    /// Number of entries held (after compaction), for metrics and status.
    pub fn len(&self) -> u64 {
        (|| -> Result<u64, redb::Error> {
            let txn = self.db.begin_read()?;
            Ok(txn.open_table(LOGS)?.len()?)
        })()
        .unwrap_or(0)
    }

    /// The last committed index this node knows of.
    pub fn committed_index(&self) -> Option<u64> {
        self.read_meta::<Option<LogId>>(COMMITTED)
            .ok()
            .flatten()
            .flatten()
            .map(|l| l.index)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once this node has taken part in a cluster (a vote or a log exists): from then
    /// on its control plane may change only through Raft.
    pub fn is_initialized(&self) -> bool {
        matches!(self.read_meta::<Vote>(VOTE), Ok(Some(_))) || !self.is_empty()
    }

    /// Runs redb work off the async threads; its error becomes openraft's, naming what
    /// failed (`subject`, `verb`).
    fn blocking<T: Send + 'static>(
        &self,
        subject: ErrorSubject<NodeId>,
        verb: ErrorVerb,
        work: impl FnOnce(&LogStore) -> Result<T, redb::Error> + Send + 'static,
    ) -> impl Future<Output = Result<T, StorageError>> + Send + 'static {
        let store = self.clone();
        async move {
            match tokio::task::spawn_blocking(move || work(&store)).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(io_err(subject, verb, e)),
                Err(e) => Err(io_err(subject, verb, e)),
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = (range.start_bound().cloned(), range.end_bound().cloned());
        self.blocking(ErrorSubject::Logs, ErrorVerb::Read, move |s| s.entries(start, end))
            .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.blocking(ErrorSubject::Logs, ErrorVerb::Read, |s| {
            let last_purged_log_id: Option<LogId> = s.read_meta(PURGED)?;
            let last = s.last_entry_id()?;
            Ok(LogState {
                last_purged_log_id,
                last_log_id: last.or(last_purged_log_id),
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.blocking(ErrorSubject::Vote, ErrorVerb::Write, move |s| s.write_meta(VOTE, &vote))
            .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.blocking(ErrorSubject::Vote, ErrorVerb::Read, |s| s.read_meta(VOTE))
            .await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.blocking(ErrorSubject::Logs, ErrorVerb::Write, move |s| {
            s.write_meta(COMMITTED, &committed)
        })
        .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.blocking(ErrorSubject::Logs, ErrorVerb::Read, |s| {
            Ok(s.read_meta::<Option<LogId>>(COMMITTED)?.flatten())
        })
        .await
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| (e.log_id.index, serde_json::to_vec(&e).expect("log entries serialize")))
            .collect();
        let result = self
            .blocking(ErrorSubject::Logs, ErrorVerb::Write, move |s| {
                let txn = s.db.begin_write()?;
                {
                    let mut table = txn.open_table(LOGS)?;
                    for (index, bytes) in &encoded {
                        table.insert(*index, bytes.as_slice())?;
                    }
                }
                txn.commit()?;
                Ok(())
            })
            .await;
        match &result {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(ErrorSubject::Logs, ErrorVerb::Delete, move |s| {
            let txn = s.db.begin_write()?;
            txn.open_table(LOGS)?.retain_in(log_id.index.., |_, _| false)?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(ErrorSubject::Logs, ErrorVerb::Delete, move |s| {
            let bytes = serde_json::to_vec(&log_id).expect("log ids serialize");
            let txn = s.db.begin_write()?;
            txn.open_table(META)?.insert(PURGED, bytes.as_slice())?;
            txn.open_table(LOGS)?.retain_in(..=log_id.index, |_, _| false)?;
            txn.commit()?;
            Ok(())
        })
        .await
    }
}
