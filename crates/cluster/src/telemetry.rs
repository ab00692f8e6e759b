//! Cluster metrics for Prometheus: term, leader changes, log size, applied index.

use std::sync::Arc;

use crate::node::Cluster;

/// Follows Raft's metrics and publishes them as gauges and counters.
pub(crate) fn spawn(cluster: Arc<Cluster>) {
    let mut metrics = cluster.raft.metrics();
    tokio::spawn(async move {
        let mut last_leader = None;
        loop {
            {
                let m = metrics.borrow_and_update().clone();
                metrics::gauge!("cluster_term").set(m.current_term as f64);
                metrics::gauge!("cluster_applied_index").set(m.last_applied.map(|l| l.index).unwrap_or(0) as f64);
                metrics::gauge!("cluster_last_log_index").set(m.last_log_index.unwrap_or(0) as f64);
                metrics::gauge!("cluster_is_leader").set(if m.current_leader == Some(cluster.id) { 1.0 } else { 0.0 });
                if m.current_leader != last_leader {
                    if m.current_leader.is_some() {
                        metrics::counter!("cluster_leader_changes_total").increment(1);
                    }
                    last_leader = m.current_leader;
                }
            }
            metrics::gauge!("cluster_log_entries").set(cluster.log.len() as f64);
            if metrics.changed().await.is_err() {
                break;
            }
        }
    });
}
