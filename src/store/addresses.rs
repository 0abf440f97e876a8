//! Pod addresses (issue 13): which pod holds which address of the node's pod network.
//! Kept in the same database as the objects, so an address survives an agent crash with
//! the pod that holds it, is never handed out twice, and is freed with its pod.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::error::SqliteContext;
use super::{Store, StoreError};
use crate::model::{next_free_address, Ipv4Cidr};

/// The meta key of the address handed out last: the next one comes after it.
const LAST_KEY: &str = "pod-address-last";

impl Store {
    /// The address of pod `pod_uid` in `network`: the one it holds, or a new one. Asking
    /// again gives the same address, so an agent that crashed between choosing and
    /// using it finds it again. An address held in another network (the node's pod
    /// network changed) is given up for one in `network`.
    pub fn pod_address(
        &mut self,
        pod_uid: &str,
        network: &Ipv4Cidr,
    ) -> Result<Ipv4Addr, StoreError> {
        let tx = self
            .sqlite_mut("pod addresses")?
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context(|| "cannot start a transaction".to_string())?;
        let held: Option<String> = tx
            .prepare_cached("SELECT address FROM pod_addresses WHERE pod_uid = ?1")
            .and_then(|mut stmt| {
                stmt.query_row(params![pod_uid], |row| row.get(0))
                    .optional()
            })
            .context(|| format!("cannot read the address of pod {pod_uid}"))?;
        if let Some(address) = held.as_deref().and_then(|a| a.parse::<Ipv4Addr>().ok()) {
            if network.contains(address) {
                return Ok(address);
            }
        }
        let mut used = BTreeSet::new();
        {
            let mut stmt = tx
                .prepare_cached("SELECT address FROM pod_addresses WHERE pod_uid != ?1")
                .context(|| "cannot read pod addresses".to_string())?;
            let rows = stmt
                .query_map(params![pod_uid], |row| row.get::<_, String>(0))
                .context(|| "cannot read pod addresses".to_string())?;
            for row in rows {
                let text = row.context(|| "cannot read pod addresses".to_string())?;
                if let Ok(address) = text.parse() {
                    used.insert(address);
                }
            }
        }
        let last: Option<Ipv4Addr> = tx
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut stmt| {
                stmt.query_row(params![LAST_KEY], |row| row.get::<_, String>(0))
                    .optional()
            })
            .context(|| "cannot read the last pod address".to_string())?
            .and_then(|text| text.parse().ok());
        let address =
            next_free_address(network, &used, last).ok_or_else(|| StoreError::Exhausted {
                what: format!("pod network {network}"),
            })?;
        tx.prepare_cached(
            "INSERT INTO pod_addresses (pod_uid, address) VALUES (?1, ?2) \
             ON CONFLICT (pod_uid) DO UPDATE SET address = excluded.address",
        )
        .and_then(|mut stmt| stmt.execute(params![pod_uid, address.to_string()]))
        .context(|| format!("cannot record address {address} of pod {pod_uid}"))?;
        tx.prepare_cached(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .and_then(|mut stmt| stmt.execute(params![LAST_KEY, address.to_string()]))
        .context(|| "cannot record the last pod address".to_string())?;
        tx.commit()
            .context(|| format!("cannot commit address {address} of pod {pod_uid}"))?;
        Ok(address)
    }

    /// Frees the address of pod `pod_uid`; returns it if the pod held one.
    pub fn release_pod_address(&mut self, pod_uid: &str) -> Result<Option<Ipv4Addr>, StoreError> {
        let held: Option<String> = self
            .sqlite("pod addresses")?
            .prepare_cached("DELETE FROM pod_addresses WHERE pod_uid = ?1 RETURNING address")
            .and_then(|mut stmt| {
                stmt.query_row(params![pod_uid], |row| row.get(0))
                    .optional()
            })
            .context(|| format!("cannot free the address of pod {pod_uid}"))?;
        Ok(held.and_then(|text| text.parse().ok()))
    }

    /// Every pod that holds an address, with it.
    pub fn pod_addresses(&self) -> Result<Vec<(String, Ipv4Addr)>, StoreError> {
        let mut stmt = self
            .sqlite("pod addresses")?
            .prepare_cached("SELECT pod_uid, address FROM pod_addresses ORDER BY pod_uid")
            .context(|| "cannot read pod addresses".to_string())?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .context(|| "cannot read pod addresses".to_string())?;
        let mut held = Vec::new();
        for row in rows {
            let (uid, text) = row.context(|| "cannot read pod addresses".to_string())?;
            let address = text.parse().map_err(|_| StoreError::Corrupt {
                what: format!("the address of pod {uid}"),
                reason: format!("{text:?} is not an IPv4 address"),
            })?;
            held.push((uid, address));
        }
        Ok(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(text: &str) -> Ipv4Cidr {
        text.parse().unwrap()
    }

    #[test]
    fn each_pod_gets_its_own_address_and_keeps_it() {
        let mut store = Store::open_in_memory().unwrap();
        let net = network("10.42.0.0/24");
        let a = store.pod_address("uid-a", &net).unwrap();
        let b = store.pod_address("uid-b", &net).unwrap();
        assert_eq!(
            (a, b),
            (Ipv4Addr::new(10, 42, 0, 2), Ipv4Addr::new(10, 42, 0, 3))
        );
        assert_eq!(
            store.pod_address("uid-a", &net).unwrap(),
            a,
            "asked again: the same"
        );
        assert_eq!(
            store.pod_addresses().unwrap(),
            [("uid-a".to_string(), a), ("uid-b".to_string(), b)]
        );
    }

    #[test]
    fn a_freed_address_is_reused_only_after_the_others() {
        let mut store = Store::open_in_memory().unwrap();
        let net = network("10.42.0.0/29"); // five pod addresses: .2 to .6
        for uid in ["a", "b", "c"] {
            store.pod_address(uid, &net).unwrap();
        }
        assert_eq!(
            store.release_pod_address("a").unwrap(),
            Some(Ipv4Addr::new(10, 42, 0, 2))
        );
        assert_eq!(store.release_pod_address("a").unwrap(), None);
        assert_eq!(
            store.pod_address("d", &net).unwrap(),
            Ipv4Addr::new(10, 42, 0, 5)
        );
        assert_eq!(
            store.pod_address("e", &net).unwrap(),
            Ipv4Addr::new(10, 42, 0, 6)
        );
        assert_eq!(
            store.pod_address("f", &net).unwrap(),
            Ipv4Addr::new(10, 42, 0, 2)
        );
        let full = store.pod_address("g", &net).unwrap_err();
        assert_eq!(
            full.to_string(),
            "pod network 10.42.0.0/29 has no free address"
        );
        assert_eq!(
            store.pod_addresses().unwrap().len(),
            5,
            "a refusal records nothing"
        );
    }

    #[test]
    fn a_pod_moves_to_a_new_pod_network() {
        let mut store = Store::open_in_memory().unwrap();
        let old = store.pod_address("a", &network("10.42.0.0/24")).unwrap();
        let new = store.pod_address("a", &network("10.42.7.0/24")).unwrap();
        assert_ne!(old, new);
        assert_eq!(new, Ipv4Addr::new(10, 42, 7, 2));
        assert_eq!(store.pod_addresses().unwrap(), [("a".to_string(), new)]);
    }
}
