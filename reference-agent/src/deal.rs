//! What this agent knows about each transaction beyond its state: its role, the parties and
//! the protocol objects exchanged so far. Shared by the layers (negotiation writes the Terms,
//! commitment the Mandate, settlement and verification read them). Keyed by transaction id
//! (= the `terms_id` reserved at Initiated, PROFILE G-16).

use std::collections::BTreeMap;
use std::sync::Mutex;

use mtp_protocol::commitment::Mandate;
use mtp_protocol::primitives::{Offer, Receipt, Request, Terms};
use mtp_protocol::state_machine::MandateStatus;

/// This agent's role in a transaction (PROFILE G-04 participant roles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Requester,
    Provider,
    Contributor,
}

/// One transaction's objects.
#[derive(Clone, Debug)]
pub struct Deal {
    pub id: [u8; 32],
    pub role: Role,
    /// DIDs of the other parties.
    pub counterparties: Vec<String>,
    pub offer: Option<Offer>,
    pub request: Option<Request>,
    pub terms: Option<Terms>,
    pub mandate: Option<Mandate>,
    pub mandate_status: Option<MandateStatus>,
    /// Settlement adapter id and its settlement id, once initiated.
    pub settlement: Option<(String, String)>,
    /// Receipts issued or received, oldest first (revised receipts carry `predecessor`).
    pub receipts: Vec<Receipt>,
}

impl Deal {
    pub fn new(id: [u8; 32], role: Role, counterparties: Vec<String>) -> Deal {
        Deal {
            id,
            role,
            counterparties,
            offer: None,
            request: None,
            terms: None,
            mandate: None,
            mandate_status: None,
            settlement: None,
            receipts: Vec::new(),
        }
    }
}

/// All deals.
#[derive(Debug, Default)]
pub struct Deals(Mutex<BTreeMap<[u8; 32], Deal>>);

impl Deals {
    pub fn insert(&self, deal: Deal) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(deal.id, deal);
    }

    pub fn get(&self, id: &[u8; 32]) -> Option<Deal> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Modify a deal in place; `None` when it does not exist.
    pub fn update<R>(&self, id: &[u8; 32], f: impl FnOnce(&mut Deal) -> R) -> Option<R> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(id)
            .map(f)
    }

    /// The deal whose Mandate has this id.
    pub fn by_mandate(&self, mandate_id: &[u8; 32]) -> Option<Deal> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|d| {
                d.mandate
                    .as_ref()
                    .is_some_and(|m| m.mandate_id.as_bytes() == mandate_id)
            })
            .cloned()
    }

    /// The most recently created deal (highest id: MTP-UUIDs start with their timestamp)
    /// that has `peer` among its counterparties.
    pub fn latest_with(&self, peer: &str) -> Option<Deal> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .rev()
            .find(|d| d.counterparties.iter().any(|c| c == peer))
            .cloned()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_with_finds_the_newest_deal_of_a_peer() {
        let deals = Deals::default();
        deals.insert(Deal::new([1; 32], Role::Provider, vec!["did:mtp:a".into()]));
        deals.insert(Deal::new([2; 32], Role::Provider, vec!["did:mtp:a".into()]));
        deals.insert(Deal::new([3; 32], Role::Provider, vec!["did:mtp:b".into()]));
        assert_eq!(deals.latest_with("did:mtp:a").map(|d| d.id), Some([2; 32]));
        assert!(deals.latest_with("did:mtp:c").is_none());
    }
}
