//! The KMS v2 provider end to end in one process: the real HTTPS KMS server on loopback, the
//! provider on a unix socket, and a gRPC client calling Status, Encrypt and Decrypt as the API
//! server does; then the key is disabled and the provider reports it unhealthy.

use std::collections::HashMap;

use agility_kms::authz::Grant;
use agility_kms::cipher::Material;
use agility_kms::crd::KeyState;
use agility_kms::keyring::{KeyRecord, Keyring, key_arn};
use agility_kms::kmsv2::{
    DecryptRequest, DecryptResponse, EncryptRequest, EncryptResponse, StatusRequest, StatusResponse,
};
use agility_kms::testing;
use hyper_util::rt::TokioIo;
use tonic::codegen::http::uri::PathAndQuery;

const AKID: &str = "AKIAAPISERVER0001";
const SECRET: &str = "apiserver-secret-apiserver-secret-01";

fn record(key_id: uuid::Uuid, state: KeyState) -> KeyRecord {
    testing::key(
        "kube-system",
        "apiserver",
        "alias/apiserver",
        key_id,
        Material::from_bytes(&[9; 32]).expect("material"),
        state,
    )
}

async fn call<Req, Resp>(
    channel: &tonic::transport::Channel,
    method: &'static str,
    req: Req,
) -> Result<Resp, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    grpc.unary(
        tonic::Request::new(req),
        PathAndQuery::from_static(method),
        tonic_prost::ProstCodec::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn the_api_server_calls_round_trip_through_the_kms() {
    let key_id = uuid::Uuid::new_v4();
    let svc = testing::service(
        vec![record(key_id, KeyState::Enabled)],
        (AKID, SECRET),
        Grant {
            keys: Some(["alias/apiserver".to_owned()].into()),
            ..testing::grant("kube-system")
        },
    );
    let kms = testing::loopback_kms(svc.clone()).await;
    let (addr, stop) = (kms.addr, kms.stop);

    let dir = std::env::temp_dir().join(format!("agility-kmsv2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let socket = dir.join("kms.sock");
    let stop_provider =
        testing::provider_on_socket(&socket, addr, &kms.ca, "alias/apiserver", (AKID, SECRET))
            .await;
    let path = socket.clone();
    let channel = tonic::transport::Endpoint::try_from("http://[::]:50051")
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .expect("connect to the provider socket");

    let status: StatusResponse = call(
        &channel,
        "/v2.KeyManagementService/Status",
        StatusRequest {},
    )
    .await
    .expect("Status");
    assert_eq!(status.version, "v2");
    assert_eq!(status.healthz, "ok");
    assert_eq!(
        status.key_id,
        format!("{}#v1", key_arn("kube-system", key_id))
    );

    let seed = vec![7u8; 32];
    let enc: EncryptResponse = call(
        &channel,
        "/v2.KeyManagementService/Encrypt",
        EncryptRequest {
            plaintext: seed.clone(),
            uid: "u1".into(),
        },
    )
    .await
    .expect("Encrypt");
    assert_ne!(enc.ciphertext, seed);
    assert_eq!(enc.key_id, status.key_id);
    let dec: DecryptResponse = call(
        &channel,
        "/v2.KeyManagementService/Decrypt",
        DecryptRequest {
            ciphertext: enc.ciphertext.clone(),
            uid: "u2".into(),
            key_id: enc.key_id.clone(),
            annotations: HashMap::new(),
        },
    )
    .await
    .expect("Decrypt");
    assert_eq!(dec.plaintext, seed);

    // A disabled key: Status says so (the API server's kms-providers healthz fails), Decrypt errors.
    svc.set_keyring(Keyring::new([record(key_id, KeyState::Disabled)]));
    let status: StatusResponse = call(
        &channel,
        "/v2.KeyManagementService/Status",
        StatusRequest {},
    )
    .await
    .expect("Status");
    assert!(
        status.healthz.contains("DisabledException"),
        "{}",
        status.healthz
    );
    let err = call::<_, DecryptResponse>(
        &channel,
        "/v2.KeyManagementService/Decrypt",
        DecryptRequest {
            ciphertext: enc.ciphertext,
            uid: "u3".into(),
            key_id: enc.key_id,
            annotations: HashMap::new(),
        },
    )
    .await
    .expect_err("disabled key");
    assert_eq!(err.code(), tonic::Code::Unavailable);
    stop_provider.cancel();
    stop.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}
