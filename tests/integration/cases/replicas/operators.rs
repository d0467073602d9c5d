//! Operators are stored objects every replica of one Redis store shares (issue 11, item 1): an operator and their
//! token created through one replica work at the other, and a token revoked through one is refused by the other
//! within a second, like any other write.

use std::time::Duration;

use serde_json::json;

use crate::cases::admin::operators::{operator, token};
use crate::common::admin_client::AdminClient;
use crate::common::harness::{Setup, canary, redis_cleanup as cleanup, within};
use crate::common::keys::rand_hex;
use crate::common::mock::Mock;

#[tokio::test]
async fn a_token_revoked_through_one_replica_is_refused_by_the_other_within_a_second() {
    let url = crate::common::harness::redis_url();
    let prefix = format!("idguard-test-{}", rand_hex(6));
    let mock = Mock::start().await;
    let mut a = Setup::standard(&mock, &canary("operators"));
    a.redis = Some((url.clone(), prefix.clone()));
    let b = Setup::replica_of(&a);
    let (a, b) = (a.start().await, b.start().await);
    let owner_a = AdminClient::of(&a);

    let kept = operator(&owner_a, "ops", "editor").await;
    let (revoked_id, revoked) = token(&owner_a, "ops", json!({"name": "to revoke"})).await;
    // Created through A, usable at B (as soon as B has the write).
    for t in [&kept, &revoked] {
        let at_b = AdminClient::new(b.admin, t);
        within(
            Duration::from_secs(1),
            "B accepting the new token",
            async || at_b.get("/admin/v1/agents").await.0 == 200,
        )
        .await;
    }
    // Revoked through A: A refuses it at once, B within a second; the other token keeps working at both.
    assert_eq!(
        owner_a
            .delete(&format!("/admin/v1/operators/ops/tokens/{revoked_id}"))
            .await
            .0,
        204
    );
    assert_eq!(
        AdminClient::new(a.admin, &revoked)
            .get("/admin/v1/agents")
            .await
            .0,
        401
    );
    let at_b = AdminClient::new(b.admin, &revoked);
    within(
        Duration::from_secs(1),
        "B refusing the revoked token",
        async || at_b.get("/admin/v1/agents").await.0 == 401,
    )
    .await;
    for h in [&a, &b] {
        assert_eq!(
            AdminClient::new(h.admin, &kept)
                .get("/admin/v1/agents")
                .await
                .0,
            200
        );
    }
    // An operator's write through B is attributed to them in the shared audit log, read through A.
    let (status, _, agent) = AdminClient::new(b.admin, &kept)
        .post("/admin/v1/agents", json!({"name": "via b"}))
        .await;
    assert_eq!(status, 201, "{agent}");
    let page = owner_a.get("/admin/v1/audit?actor=ops").await.2;
    assert_eq!(page["records"][0]["id"], agent["id"], "{page}");
    assert_eq!(page["records"][0]["auth"], "operator_token");
    cleanup(&url, &prefix);
}
