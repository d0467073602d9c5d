//! The caps on open connections of one listener, in total and per client address: checked once per accepted
//! connection (never per request), released when its [`ConnGuard`] drops.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use prometheus::IntGauge;

use crate::metrics::ConnRefusal;

/// Open connections of one listener.
pub(crate) struct ConnTable {
    open: AtomicUsize,
    /// Open connections by client key (see [`client_key`]); an entry is removed when its count reaches 0, so the
    /// map holds only addresses with a connection open.
    per_ip: DashMap<IpAddr, usize>,
    gauge: IntGauge,
}

/// One admitted connection's place in its [`ConnTable`].
pub(crate) struct ConnGuard {
    table: Arc<ConnTable>,
    /// The client key counted, when a per-address cap was in force at admission.
    key: Option<IpAddr>,
}

// === impl ConnTable ===

impl ConnTable {
    /// An empty table reporting its size in `gauge`.
    pub(crate) fn new(gauge: IntGauge) -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            per_ip: DashMap::new(),
            gauge,
        })
    }

    /// Admits a connection from `peer` when fewer than `max` are open and (unless `max_per_ip` is 0) fewer than
    /// `max_per_ip` from its address. The caps are passed per call so a reload applies to the next connection.
    ///
    /// # Errors
    /// The cap that is full.
    pub(crate) fn admit(
        self: &Arc<Self>,
        peer: IpAddr,
        max: usize,
        max_per_ip: usize,
    ) -> Result<ConnGuard, ConnRefusal> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(ConnRefusal::MaxConnections);
        }
        let key = if max_per_ip == 0 {
            None
        } else {
            let key = client_key(peer);
            let mut count = self.per_ip.entry(key).or_insert(0);
            if *count >= max_per_ip {
                drop(count);
                self.open.fetch_sub(1, Ordering::AcqRel);
                return Err(ConnRefusal::MaxConnectionsPerIp);
            }
            *count += 1;
            Some(key)
        };
        self.gauge.inc();
        Ok(ConnGuard {
            table: self.clone(),
            key,
        })
    }
}

// === impl ConnGuard ===

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.table.per_ip.remove_if_mut(&key, |_, count| {
                *count -= 1;
                *count == 0
            });
        }
        self.table.open.fetch_sub(1, Ordering::AcqRel);
        self.table.gauge.dec();
    }
}

/// The address a per-address cap counts: IPv4 as is (IPv4-mapped IPv6 included), IPv6 by its /64, since one host
/// commonly holds a whole /64.
fn client_key(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Arc<ConnTable> {
        ConnTable::new(IntGauge::new("open", "open").unwrap())
    }

    #[test]
    fn the_total_cap_refuses_past_max_and_a_closed_connection_frees_its_slot() {
        let t = table();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = t.admit(a, 2, 0).unwrap();
        let _second = t.admit(b, 2, 0).unwrap();
        assert_eq!(t.admit(a, 2, 0).err(), Some(ConnRefusal::MaxConnections));
        assert_eq!(t.gauge.get(), 2);
        drop(first);
        assert!(t.admit(a, 2, 0).is_ok());
    }

    #[test]
    fn the_per_address_cap_counts_each_address_and_ipv6_by_its_64() {
        let t = table();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| t.admit(a, 100, 3).unwrap()).collect();
        assert_eq!(
            t.admit(a, 100, 3).err(),
            Some(ConnRefusal::MaxConnectionsPerIp)
        );
        assert!(t.admit("10.0.0.2".parse().unwrap(), 100, 3).is_ok());
        // The IPv4-mapped form is the same client.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert!(t.admit(mapped, 100, 3).is_err());
        drop(held);
        assert!(
            t.per_ip.get(&a).is_none(),
            "an address with nothing open is forgotten"
        );

        let _one = t.admit("2001:db8::1".parse().unwrap(), 100, 1).unwrap();
        assert!(
            t.admit("2001:db8::ffff:2".parse().unwrap(), 100, 1)
                .is_err()
        );
        assert!(t.admit("2001:db8:0:1::1".parse().unwrap(), 100, 1).is_ok());
    }
}
