//! Algorithm Negotiation over MTPAsync (BIND-X-I01; PROFILE G-38): the explicit exchange is
//! this agent's signed `alg-profile-message` `{type: "alg_profile", agent_id, profile,
//! timestamp, signature}` on `mtp.alg`, sealed for the counterparty (PROFILE G-06). It is
//! announced to every peer the agent learns (`add_peer`), so that the peer can negotiate
//! before any asynchronous exchange.

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::identity::DidDocument;
use mtp_protocol::primitives::common::tdate_value;
use mtp_protocol::wire::{self, subject};

use super::{SealedMessage, SenderIdentity};
use crate::agent::Agent;
use crate::transport::sync::framing::own_alg_profile;

/// The signed `alg-profile-message` of `agent` (signature over det-CBOR of the message
/// without `signature`, PROFILE G-02).
pub fn signed_message(agent: &Agent) -> Result<Value, String> {
    let key_id = crate::layers::identity::own_key_id(agent);
    let unsigned = Value::map([
        ("type", Value::text("alg_profile")),
        ("agent_id", Value::text(agent.did())),
        ("profile", own_alg_profile().to_value()),
        ("timestamp", tdate_value(agent.now())),
    ]);
    let input = cbor::to_vec(&unsigned).map_err(|e| e.to_string())?;
    let mut value = agent.keys.signing.sign(&input);
    // Defect: the announcement's signature does not verify.
    if agent.fault("alg-profile-bad-signature")
        && let Some(b) = value.get_mut(7)
    {
        *b ^= 0x5a;
    }
    let Value::Map(mut entries) = unsigned else {
        return Err("the message is a map".into());
    };
    entries.push((
        Value::text("signature"),
        Value::map([
            (
                "algorithm",
                Value::text(agent.keys.signing.algorithm().label()),
            ),
            ("key_id", Value::text(key_id)),
            ("value", Value::bytes(value)),
        ]),
    ));
    Ok(Value::Map(entries))
}

/// Announces this agent's profile to the peer whose DID Document (JSON) is `document`:
/// sealed for its `keyAgreement` keys and published on `mtp.alg`. `Ok(false)` when the agent
/// has no MTPAsync connection or the peer no `keyAgreement` key.
pub async fn announce(agent: &Agent, document: &str) -> Result<bool, String> {
    if agent.fault("alg-profile-not-announced") {
        return Ok(false);
    }
    let Some(nats) = agent.nats.get() else {
        return Ok(false);
    };
    let doc = DidDocument::from_json(document).map_err(|e| e.to_string())?;
    let keys = doc.key_agreement_keys();
    if keys.is_empty() {
        return Ok(false);
    }
    let recipients: Vec<wire::RecipientKey<'_>> = keys
        .iter()
        .map(|(kid, alg, key)| wire::RecipientKey {
            kid,
            algorithm: *alg,
            encapsulation_key: key,
        })
        .collect();
    let body = signed_message(agent)?;
    let (randomness, nonce) = {
        let mut rng = agent.rng.lock().unwrap_or_else(|p| p.into_inner());
        let r = wire::EnvelopeRandomness::draw(&mut rng, recipients.len());
        let n: [u8; 8] = rng.bytes();
        (r, n)
    };
    let msg_id = Value::text(format!(
        "alg-profile-{}-{}",
        agent.keys.did.method_specific_id(),
        hex::encode(nonce)
    ));
    let did = agent.did();
    let key_id = crate::layers::identity::own_key_id(agent);
    nats.publish_sealed(
        &SealedMessage {
            subject: subject::ALG,
            frame_type: "alg_profile",
            msg_id: &msg_id,
            body: &body,
            recipients: &recipients,
        },
        &SenderIdentity {
            did: &did,
            key_id: Some(&key_id),
            signing_key: &agent.keys.signing,
        },
        &randomness,
        None,
    )
    .await
    .map(|_| true)
    .map_err(|e| e.to_string())
}
