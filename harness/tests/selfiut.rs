//! `certify --self` infrastructure: reference agents as child processes of `mtp-cert`, each
//! with its own nats-server, answering on their test-control interface.

use std::str::FromStr;

use mtp_harness::selfiut::{SelfIut, SelfIutOptions};
use mtp_protocol::cbor::Value;
use mtp_reference_agent::services::control::ControlClient;
use mtp_reference_agent::transport::sync::{Fingerprint, TlsIdentity};

fn opts(dir: &std::path::Path, faults: Vec<String>, harness: &TlsIdentity) -> SelfIutOptions {
    SelfIutOptions {
        instances: 2,
        run_seed: 7,
        faults,
        nats_url: None,
        harness_fingerprint: harness.fingerprint.to_string(),
        work_dir: dir.to_path_buf(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_start_answer_hello_and_stop() {
    // The integration-test binary is not mtp-cert: point current_exe() users at the real one.
    let dir = tempfile::tempdir().unwrap();
    let harness = TlsIdentity::from_seed(&[0x11; 32], "mtp-harness").unwrap();
    let o = opts(
        dir.path(),
        vec!["skip-offer-signature-check".to_owned()],
        &harness,
    );
    let iut = tokio::task::spawn_blocking(move || {
        SelfIut::start_with(env!("CARGO_BIN_EXE_mtp-cert").as_ref(), &o)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(iut.instances.len(), 2);
    assert_ne!(iut.instances[0].did, iut.instances[1].did);
    assert_ne!(iut.instances[0].nats_url, iut.instances[1].nats_url);
    for inst in &iut.instances {
        let fp = Fingerprint::from_str(&inst.fingerprint).unwrap();
        let c = ControlClient::connect(&inst.control_endpoint, fp, &harness)
            .await
            .unwrap();
        let hello = c
            .invoke("hello", Value::map(Vec::<(&str, Value)>::new()))
            .await
            .unwrap();
        assert_eq!(
            hello.get("did").and_then(Value::as_text),
            Some(inst.did.as_str())
        );
        let faults = hello.get("test_faults").and_then(Value::as_array).unwrap();
        assert_eq!(faults, &[Value::text("skip-offer-signature-check")]);
    }
    let yaml = iut.description("harness.seed");
    assert!(yaml.contains(&iut.instances[1].control_endpoint), "{yaml}");
    iut.stop();
}
