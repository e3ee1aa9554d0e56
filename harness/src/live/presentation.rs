//! The harness's judgement of the credentials the IUT presents (SPEC III-A-1; PROFILE G-04,
//! G-33, G-35), independent of the IUT:
//!
//! - [`provision_args`]: a `provision` control step with `selective_disclosure:
//!   {disclosable: [claim, ...]}` is completed by the harness: its Principal issues the IUT
//!   a fresh Authority Delegation Credential whose named `credentialSubject` members are
//!   selectively disclosable (SD-JWT adapted to JSON-LD, G-35), and the step provisions it
//!   (`principal`, `delegation_chain`, `sd_disclosures`, `status_lists`).
//! - [`check_attestation`]: every Authority Attestation the IUT sends (a NIM's Request, a
//!   Request) must present W3C VC 2.0 credentials: each delegation link's credential is a
//!   VC 2.0 credential whose Data Integrity proof verifies under its issuer's key
//!   (SPEC-III-A-1-04), and a `vc_presentation` is either a VC 2.0 presentation (JSON-LD,
//!   `VerifiablePresentation`) or an SD-JWT presentation that verifies — credential proof,
//!   disclosures against `_sd`, key binding by the IUT for the Request's id and the
//!   harness's Agent (SPEC-III-A-1-07). When the scenario's last `create_request` named
//!   the claims to `reveal`, exactly those are disclosed and every other disclosable claim
//!   stays hidden (absent from the presentation and from the credential's visible claims).

use std::collections::BTreeSet;

use mtp_protocol::cbor::Value;
use mtp_protocol::identity::DidDocument;
use mtp_protocol::identity::credential::{self, Credential, DocumentResolver};
use mtp_protocol::identity::disclosure;
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::MtpUuid;

use super::oracle::Violation;
use super::persona::Principal;

/// The `provision` arguments for `selective_disclosure: {disclosable: [...]}` (module doc);
/// `None` when the step does not ask for it.
pub fn provision_args(
    principal: &mut Principal,
    iut_did: &str,
    args: &Value,
    now: Timestamp,
) -> Option<Result<Value, String>> {
    let sd = args.get("selective_disclosure")?;
    let names: Vec<&str> = sd
        .get("disclosable")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_text).collect())
        .unwrap_or_default();
    Some(
        principal
            .delegate_selective(iut_did, &names, now)
            .map_err(|e| e.to_string())
            .map(|(issued, disclosures)| {
                Value::map([
                    ("principal", Value::text(principal.did())),
                    (
                        "delegation_chain",
                        Value::Array(vec![Value::text(issued.json)]),
                    ),
                    (
                        "sd_disclosures",
                        Value::Array(disclosures.into_iter().map(Value::text).collect()),
                    ),
                    ("status_lists", principal.status_lists_value()),
                ])
            }),
    )
}

/// What [`check_attestation`] needs.
pub struct PresentationCtx<'a> {
    /// DID Documents of the possible issuers and holders (the Principal, the IUT, personas).
    pub documents: Vec<DidDocument>,
    /// The harness Agents a presentation may be bound to (`aud`).
    pub audiences: &'a [String],
    /// Claims the scenario asked the IUT to reveal (last `create_request.reveal`).
    pub reveal: Option<&'a [String]>,
}

fn violation(requirement: &'static str, expected: &str, observed: impl Into<String>) -> Violation {
    Violation {
        requirement,
        expected: expected.to_owned(),
        observed: observed.into(),
    }
}

fn text_id(v: &Value) -> Option<String> {
    match v {
        Value::Bytes(b) => MtpUuid::from_bytes(b).ok().map(|u| u.to_string()),
        Value::Text(t) => Some(t.clone()),
        _ => None,
    }
}

/// Checks the Authority Attestation of a `nim` (its `request`) or `request` body (module
/// doc); bodies without one pass.
pub fn check_attestation(
    frame_type: &str,
    body: &Value,
    ctx: &PresentationCtx<'_>,
) -> Result<(), Violation> {
    let request = match frame_type {
        "nim" => match body.get("request") {
            Some(r) => r,
            None => return Ok(()),
        },
        "request" => body,
        _ => return Ok(()),
    };
    let Some(att) = request.get("authority_attestation") else {
        return Ok(());
    };
    let resolver: DocumentResolver = ctx.documents.iter().cloned().collect();
    const VC: &str = "SPEC-III-A-1-04";
    const VC_EXPECTED: &str = "every delegation credential presented is a W3C VC 2.0 credential whose proof verifies under its issuer's key (PROFILE G-33, G-34)";
    for (i, link) in att
        .get("delegation_chain")
        .and_then(Value::as_array)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let Some(text) = link.get("credential").and_then(Value::as_text) else {
            return Err(violation(
                VC,
                VC_EXPECTED,
                format!("delegation_chain[{i}].credential is not a text"),
            ));
        };
        let cred = Credential::from_json(text)
            .map_err(|e| violation(VC, VC_EXPECTED, format!("delegation_chain[{i}]: {e}")))?;
        let issuer = cred.issuer().unwrap_or_default().to_owned();
        if resolver.get(&issuer).is_none() {
            // An issuer the harness does not know (a chain the harness did not issue).
            continue;
        }
        credential::verify(&cred, &resolver)
            .map_err(|e| violation(VC, VC_EXPECTED, format!("delegation_chain[{i}]: {e}")))?;
    }
    let Some(proof) = att.get("proof") else {
        return Ok(());
    };
    if proof.get("type").and_then(Value::as_text) != Some("vc_presentation") {
        return Ok(());
    }
    let presentation = proof
        .get("presentation")
        .and_then(Value::as_text)
        .unwrap_or_default();
    if presentation.trim_start().starts_with('{') {
        let vp: serde_json::Value = serde_json::from_str(presentation).map_err(|e| {
            violation(
                VC,
                "a JSON-LD Verifiable Presentation (VC 2.0)",
                e.to_string(),
            )
        })?;
        let ctx_ok = vp
            .get("@context")
            .and_then(|c| c.as_array())
            .and_then(|a| a.first())
            .and_then(|c| c.as_str())
            == Some(mtp_protocol::identity::jsonld::CREDENTIALS_V2);
        let type_ok = match vp.get("type") {
            Some(serde_json::Value::String(t)) => t == "VerifiablePresentation",
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .any(|t| t.as_str() == Some("VerifiablePresentation")),
            _ => false,
        };
        if !ctx_ok || !type_ok {
            return Err(violation(
                VC,
                "a Verifiable Presentation: @context starting with https://www.w3.org/ns/credentials/v2, type VerifiablePresentation",
                presentation.chars().take(200).collect::<String>(),
            ));
        }
        if ctx.reveal.is_some() {
            return Err(violation(
                "SPEC-III-A-1-07",
                "a selective-disclosure (SD-JWT) presentation of the requested claims (PROFILE G-35)",
                "a plain JSON-LD presentation",
            ));
        }
        return Ok(());
    }
    // SD-JWT presentation (PROFILE G-35): first the credential it carries (VC 2.0).
    {
        use base64::Engine as _;
        let first = presentation.split('~').next().unwrap_or_default();
        let cred = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(first.trim_end_matches('='))
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                violation(
                    VC,
                    VC_EXPECTED,
                    "the SD-JWT credential part is not base64url JSON",
                )
            })
            .and_then(|t| {
                Credential::from_json(&t)
                    .map_err(|e| violation(VC, VC_EXPECTED, format!("presented credential: {e}")))
            })?;
        credential::verify(&cred, &resolver)
            .map_err(|e| violation(VC, VC_EXPECTED, format!("presented credential: {e}")))?;
    }
    const SD: &str = "SPEC-III-A-1-07";
    let nonce = request
        .get("request_id")
        .and_then(text_id)
        .unwrap_or_default();
    let mut last = None;
    let mut verified = None;
    for aud in ctx.audiences {
        match disclosure::verify_presentation(presentation, &resolver, &nonce, aud) {
            Ok(v) => {
                verified = Some(v);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let v = verified.ok_or_else(|| {
        violation(
            SD,
            "an SD-JWT presentation that verifies: credential proof, disclosures in _sd, key binding by the holder for this Request and counterparty (PROFILE G-35)",
            last.map(|e| e.to_string()).unwrap_or_default(),
        )
    })?;
    if let Some(reveal) = ctx.reveal {
        let want: BTreeSet<&str> = reveal.iter().map(String::as_str).collect();
        let got: BTreeSet<&str> = v.disclosed.iter().map(String::as_str).collect();
        if want != got {
            return Err(violation(
                SD,
                &format!("exactly the requested claims disclosed: {want:?}"),
                format!("disclosed {got:?}"),
            ));
        }
        if v.undisclosed == 0 {
            return Err(violation(
                SD,
                "the claims not requested stay undisclosed (digests in _sd without disclosure)",
                "every digest of _sd was disclosed",
            ));
        }
    }
    Ok(())
}
