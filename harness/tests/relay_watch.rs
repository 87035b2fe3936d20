//! The run's Hubble stream against a local scripted Relay: reopened when it ends, with an actionable error
//! when Relay cannot be reached.

use harness::live::RelayWatch;
use hubble::fake::FakeRelay;

#[tokio::test]
async fn a_stream_that_ends_is_reopened_for_the_next_probes() {
    let relay = FakeRelay::start().await.expect("fake relay");
    let watch = RelayWatch::open(&relay.endpoint())
        .await
        .expect("relay opens");
    let first_stream = relay.next_stream().await.expect("first GetFlows call");
    let first = watch.get().await.expect("current stream");
    // The server ends the stream (as a Relay restart would).
    first_stream.close();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while first.stats().ended.is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(ended.is_ok(), "the first stream never ended");
    let second = watch.get().await.expect("a new stream");
    assert!(
        !std::sync::Arc::ptr_eq(&first, &second),
        "the ended stream was kept"
    );
    assert!(
        relay.next_stream().await.is_some(),
        "no second GetFlows call was made"
    );
    assert_eq!(relay.flow_requests().len(), 2);
}

#[tokio::test]
async fn an_unreachable_relay_is_an_error_naming_it() {
    let relay = FakeRelay::start().await.expect("fake relay");
    let url = relay.endpoint();
    drop(relay);
    let err = RelayWatch::open(&url).await.err().unwrap_or_default();
    assert!(err.contains(&url) || err.contains("Relay"), "{err}");
}
