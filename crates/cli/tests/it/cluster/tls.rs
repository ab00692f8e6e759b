//! Members under mutual TLS: certificates from a CA made in the test (rcgen). The cluster
//! forms and replicates over TLS; a caller without a certificate, with one from another
//! CA, or speaking plain HTTP never reaches a handler; the secret is still required.

use std::path::Path;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use reqwest::Method;
use rustls::pki_types::pem::PemObject;

use super::*;

/// A CA and a certificate it signed for 127.0.0.1, written as PEM files in `dir`:
/// (certificate, key, CA certificate).
fn certificates(dir: &Path, name: &str) -> (String, String, String) {
    std::fs::create_dir_all(dir).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} cluster CA"));
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "tenantry member");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();

    let path = |file: &str| dir.join(format!("{name}-{file}")).to_string_lossy().into_owned();
    let (cert_path, key_path, ca_path) = (path("cert.pem"), path("key.pem"), path("ca.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    (cert_path, key_path, ca_path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_under_mutual_tls_replicate_and_refuse_everyone_else() {
    let Some(redis) = tenantry_testkit::configured(tenantry_testkit::Service::Redis) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // One member certificate shared by all three keeps the test short; each member would
    // have its own in production (any certificate the CA signed is accepted).
    let (cert, key, ca) = certificates(&dir.path().join("pki"), "cluster");
    let tls = [
        ("TENANTRY_CLUSTER_TLS_CERT", cert.as_str()),
        ("TENANTRY_CLUSTER_TLS_KEY", key.as_str()),
        ("TENANTRY_CLUSTER_TLS_CA", ca.as_str()),
    ];
    let addresses = (0..3)
        .map(|_| {
            let listen: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            (listen, format!("https://{listen}"))
        })
        .collect();
    // init and join go through `tenantry cluster`, which presents the certificate too.
    let (nodes, token) = three_members_at(dir.path(), &redis, &tls, addresses).await;

    // A write through a follower is forwarded over TLS and replicated to all.
    let leader = nodes[0].status().await.unwrap()["leader_id"].as_u64().unwrap();
    let follower = nodes.iter().find(|n| n.id != leader).unwrap();
    let (status, body) = create_tenant(&token, &follower.api(), "over-tls").await;
    assert_eq!(status, 201, "{body}");
    all_caught_up(&nodes).await;
    for node in &nodes {
        let (status, _) = admin_call(&token, &node.api(), Method::GET, "/v1/admin/tenants/over-tls", None).await;
        assert_eq!(status, 200, "on node {}", node.id);
    }
    let (ok, out) = nodes[1].cluster(&["status"]);
    assert!(ok && out.contains("leader"), "cluster status over TLS: {out}");
    assert_same_trees(&nodes);

    let target = nodes[0].direct_url.clone();
    let status_url = format!("{target}/cluster/status");
    // Plain HTTP to the TLS listener: no answer.
    let plain = format!("{}/cluster/status", target.replacen("https://", "http://", 1));
    let answer = reqwest::Client::new()
        .get(&plain)
        .bearer_auth(SECRET)
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    assert!(answer.is_err(), "plain HTTP answered: {answer:?}");
    // TLS that trusts the CA but presents no client certificate: the handshake fails.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(&ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let no_certificate = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let anonymous = reqwest::Client::builder()
        .tls_backend_preconfigured(no_certificate)
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let answer = anonymous.get(&status_url).bearer_auth(SECRET).send().await;
    assert!(answer.is_err(), "no client certificate, yet answered: {answer:?}");
    // A client certificate from another CA: refused as well.
    let (rogue_cert, rogue_key, _) = certificates(&dir.path().join("pki"), "rogue");
    let rogue_tls = tenantry_cluster::MutualTls::load(rogue_cert.as_ref(), rogue_key.as_ref(), ca.as_ref()).unwrap();
    let rogue = reqwest::Client::builder()
        .tls_backend_preconfigured(rogue_tls.client)
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let answer = rogue.get(&status_url).bearer_auth(SECRET).send().await;
    assert!(answer.is_err(), "another CA's certificate, yet answered: {answer:?}");
    // The right certificate without the secret: 401 from inside the channel.
    let answer = nodes[0].http.get(&status_url).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    // The listener still serves members afterwards.
    assert!(nodes[0].status().await.is_some());
}
