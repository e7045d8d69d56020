//! The low findings on real `arcad` processes: what an unauthenticated caller can still reach on the
//! API listener (health and seal status, nothing that discloses the cluster), and an unseal key file
//! that others can read is never used.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use arca_client::{pb, ClientError};
use arca_testkit::attack;
use arca_testkit::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_only_health_and_seal_status_answer() {
    let cluster = TestCluster::start(1).await.unwrap();
    let anonymous = cluster.client_with_token(0, None).await.unwrap();

    // The topology is not for strangers.
    let err = anonymous
        .cluster()
        .get_cluster_status(pb::GetClusterStatusRequest {})
        .await
        .map_err(ClientError::from)
        .expect_err("GetClusterStatus needs a token");
    assert_eq!(err.code, tonic::Code::Unauthenticated, "{err:?}");
    let err = anonymous
        .cluster()
        .create_join_token(pb::CreateJoinTokenRequest { ttl: None })
        .await
        .map_err(ClientError::from)
        .expect_err("a join token needs a token");
    assert_eq!(err.code, tonic::Code::Unauthenticated, "{err:?}");

    // Nor is the API's shape: reflection sits behind the token check too.
    let api = format!("{}:{}", cluster.nodes[0].ip, cluster.nodes[0].api_port);
    let channel = attack::channel(&api, None).unwrap();
    let reflection =
        attack::raw_unary(channel.clone(), "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", ()).await;
    assert_eq!(reflection.expect_err("reflection needs a token").code(), tonic::Code::Unauthenticated);

    // Health and seal status answer anyone: load balancers and operators need them before any token.
    attack::raw_unary(channel, "/grpc.health.v1.Health/Check", ()).await.expect("health answers without a token");
    let seal = anonymous
        .operator()
        .get_seal_status(pb::GetSealStatusRequest {})
        .await
        .map_err(ClientError::from)
        .expect("seal status answers without a token")
        .into_inner();
    assert!(!seal.sealed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unseal_key_file_others_can_read_is_never_used() {
    let mut cluster = TestCluster::start(1).await.unwrap();
    let key_file = cluster.unseal_key_path();
    cluster.kill(0);
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    cluster.relaunch(0).unwrap();
    cluster.wait_answering(0).await.unwrap();

    // The node stays sealed and says why, naming the fix.
    let anonymous = cluster.client_with_token(0, None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(&cluster.nodes[0].log_path).unwrap_or_default();
        if log.contains("readable by others") && log.contains("chmod 600") {
            break;
        }
        assert!(Instant::now() < deadline, "arcad never said why it did not use the key file:\n{log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = anonymous.operator().get_seal_status(pb::GetSealStatusRequest {}).await.unwrap().into_inner();
    assert!(status.sealed, "a node unsealed itself from a key file others can read");

    // Made private, the same file unseals the node.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    cluster.wait_unsealed(0).await.expect("the node unseals once the key file is private");
}
