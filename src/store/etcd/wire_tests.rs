//! The gateway's JSON both ways, with answers as etcd 3.4 writes them (zero values left
//! out, int64s as strings, bytes as base64).

use serde_json::json;

use super::super::types::*;
use super::super::KeyRange;
use super::*;

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

#[test]
fn a_range_answer_reads_int64_strings_and_base64() {
    let text = r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709",
        "revision":"2","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"2",
        "mod_revision":"2","version":"1","value":"YmFy","lease":"7587869171735069443"}],"count":"1"}"#;
    let answer: RangeResponse = parse(text).unwrap();
    assert_eq!(answer.header.cluster_id, 15118495548433857066);
    assert_eq!(answer.header.revision, 2);
    assert_eq!(answer.count, 1);
    assert!(!answer.more);
    let kv = &answer.kvs[0];
    assert_eq!(kv.key, b"foo");
    assert_eq!(kv.value, b"bar");
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 2, 1));
    assert_eq!(kv.lease, 7587869171735069443);
}

#[test]
fn missing_fields_are_zero_values() {
    // A range that found nothing: no kvs, no count, no more.
    let empty: RangeResponse = parse(r#"{"header":{"revision":"7"}}"#).unwrap();
    assert_eq!(empty.header.revision, 7);
    assert_eq!((empty.kvs.len(), empty.count, empty.more), (0, 0, false));
    // A failed txn without failure operations: no succeeded, no responses.
    let failed: TxnResponse = parse(r#"{"header":{"revision":"8"}}"#).unwrap();
    assert!(!failed.succeeded);
    assert!(failed.responses.is_empty());
    // A DELETE event's kv: only key and mod_revision; no type means PUT.
    let event: WatchEvent =
        parse(r#"{"type":"DELETE","kv":{"key":"YTE=","mod_revision":"7"}}"#).unwrap();
    assert_eq!(event.kind, EventKind::Delete);
    assert_eq!((event.kv.create_revision, event.kv.version), (0, 0));
    assert!(event.kv.value.is_empty());
    assert!(event.prev_kv.is_none());
    let put: WatchEvent = parse(r#"{"kv":{"key":"YTE="}}"#).unwrap();
    assert_eq!(put.kind, EventKind::Put);
    // An empty object and explicit nulls read as zeros too.
    let nothing: DeleteResponse = parse("{}").unwrap();
    assert_eq!(nothing, DeleteResponse::default());
    let nulls: RangeResponse =
        parse(r#"{"kvs":null,"count":null,"more":null,"header":{"revision":null}}"#).unwrap();
    assert_eq!(nulls, RangeResponse::default());
    let value_less: KeyValue = parse(r#"{"key":"YQ==","value":null}"#).unwrap();
    assert!(value_less.value.is_empty());
}

#[test]
fn integers_are_accepted_as_numbers_too() {
    let kv: KeyValue = parse(r#"{"key":"YQ==","mod_revision":9,"version":"3"}"#).unwrap();
    assert_eq!((kv.mod_revision, kv.version), (9, 3));
    let event: WatchEvent = parse(r#"{"type":1,"kv":{}}"#).unwrap();
    assert_eq!(event.kind, EventKind::Delete);
    let negative: LeaseKeepAlive = parse(r#"{"ID":"5","TTL":"-1"}"#).unwrap();
    assert_eq!(negative.ttl, -1);
}

#[test]
fn bad_values_are_errors_that_name_the_field() {
    let cases = [
        (
            r#"{"mod_revision":"12x"}"#,
            "mod_revision: invalid int64 \"12x\"",
        ),
        (r#"{"version":1.5}"#, "version"),
        (
            r#"{"create_revision":"99999999999999999999"}"#,
            "create_revision: invalid int64",
        ),
        (
            r#"{"lease":18446744073709551615}"#,
            "lease: 18446744073709551615 is not a int64",
        ),
        (r#"{"key":"!!!"}"#, "key: invalid base64"),
        (r#"{"value":42}"#, "value: base64 bytes"),
    ];
    for (text, expected) in cases {
        let error = parse::<KeyValue>(text).unwrap_err();
        assert!(error.contains(expected), "{text}: {error}");
    }
    let header = parse::<ResponseHeader>(r#"{"member_id":"-1"}"#).unwrap_err();
    assert!(header.contains("member_id: invalid uint64"), "{header}");
    let kind = parse::<WatchEvent>(r#"{"type":"EXPIRE"}"#).unwrap_err();
    assert!(kind.contains("unknown event type \"EXPIRE\""), "{kind}");
    let not_json = parse::<RangeResponse>("<html>").unwrap_err();
    assert!(not_json.contains("line 1"), "{not_json}");
}

#[test]
fn a_huge_bad_value_is_not_echoed_whole() {
    let bad = format!(r#"{{"value":"{}!"}}"#, "A".repeat(100_000));
    let error = parse::<KeyValue>(&bad).unwrap_err();
    assert!(error.len() < 300, "{} bytes", error.len());
    assert!(error.contains("100001 characters"), "{error}");
}

#[test]
fn txn_answers_keep_each_operation_s_kind() {
    let text = r#"{"header":{"revision":"9"},"succeeded":true,"responses":[
        {"response_range":{"header":{"revision":"9"},"kvs":[{"key":"YQ==","value":"MQ=="}],"count":"1"}},
        {"response_put":{"header":{"revision":"9"}}},
        {"response_delete_range":{"header":{"revision":"9"},"deleted":"1"}}]}"#;
    let answer: TxnResponse = parse(text).unwrap();
    assert!(answer.succeeded);
    match &answer.responses[..] {
        [TxnOpResponse::Range(range), TxnOpResponse::Put(put), TxnOpResponse::Delete(delete)] => {
            assert_eq!(range.kvs[0].value, b"1");
            assert!(put.prev_kv.is_none());
            assert_eq!(delete.deleted, 1);
        }
        other => panic!("unexpected responses {other:?}"),
    }
    let nested = parse::<TxnResponse>(r#"{"responses":[{"response_txn":{}}]}"#).unwrap_err();
    assert!(nested.contains("response_txn"), "{nested}");
}

#[test]
fn lease_and_status_answers_use_their_proto_spelling() {
    let grant: LeaseGrant = parse(r#"{"header":{},"ID":"4111120405333505804","TTL":"5"}"#).unwrap();
    assert_eq!((grant.id, grant.ttl), (4111120405333505804, 5));
    let status: Status = parse(
        r#"{"header":{"member_id":"3"},"version":"3.4.23","dbSize":"20480","leader":"3",
        "raftIndex":"9","raftTerm":"2","raftAppliedIndex":"9","dbSizeInUse":"16384"}"#,
    )
    .unwrap();
    assert_eq!(status.version, "3.4.23");
    assert_eq!((status.db_size, status.db_size_in_use), (20480, 16384));
    assert_eq!((status.leader, status.raft_term), (3, 2));
    assert!(!status.is_learner && status.errors.is_empty());
}

#[test]
fn watch_lines_carry_a_result_or_an_error() {
    let created: StreamLine<WatchMessage> =
        parse(r#"{"result":{"header":{"revision":"4"},"created":true}}"#).unwrap();
    let created = created.result.unwrap();
    assert!(created.created && !created.canceled);
    assert_eq!(created.watch_id, 0);
    let compacted: StreamLine<WatchMessage> =
        parse(r#"{"result":{"header":{},"canceled":true,"compact_revision":"3"}}"#).unwrap();
    let compacted = compacted.result.unwrap();
    assert!(compacted.canceled);
    assert_eq!(compacted.compact_revision, 3);
    let failed: StreamLine<WatchMessage> = parse(
        r#"{"error":{"grpc_code":7,"http_code":403,"message":"etcdserver: permission denied","http_status":"Forbidden"}}"#,
    )
    .unwrap();
    assert!(failed.result.is_none());
    let error = GatewayError::from_value(&json!({ "error": failed.error.unwrap() }));
    assert_eq!(error.code, 7);
    assert_eq!(error.message, "etcdserver: permission denied");
}

#[test]
fn gateway_errors_are_read_in_every_shape() {
    let unary = GatewayError::parse(
        br#"{"error":"etcdserver: mvcc: required revision is a future revision","message":"etcdserver: mvcc: required revision is a future revision","code":11}"#,
    );
    assert_eq!(unary.code, 11);
    assert_eq!(
        unary.message,
        "etcdserver: mvcc: required revision is a future revision"
    );
    let error_only = GatewayError::parse(br#"{"error":"no leader","code":14}"#);
    assert_eq!(
        (error_only.code, error_only.message.as_str()),
        (14, "no leader")
    );
    let html = GatewayError::parse(b"<html>502 Bad Gateway</html>");
    assert_eq!(html.message, "<html>502 Bad Gateway</html>");
    let long = GatewayError::parse(&[b'x'; 10_000]);
    assert!(long.message.len() < 300);
}

#[test]
fn requests_use_strings_for_int64_and_base64_for_bytes() {
    let options = RangeOptions {
        limit: 10,
        revision: 42,
        ..RangeOptions::default()
    };
    assert_eq!(
        range_request(&KeyRange::prefix(b"a/"), &options),
        json!({"key": "YS8=", "range_end": "YTA=", "limit": "10", "revision": "42"})
    );
    // Zero values are left out, as protobuf does.
    assert_eq!(
        range_request(&KeyRange::key(b"a"), &RangeOptions::default()),
        json!({"key": "YQ=="})
    );
    let put = PutOptions {
        lease: 7,
        prev_kv: true,
    };
    assert_eq!(
        put_request(b"k", b"v", &put),
        json!({"key": "aw==", "value": "dg==", "lease": "7", "prev_kv": true})
    );
    assert_eq!(
        delete_request(&KeyRange::from_key(b"k"), true),
        json!({"key": "aw==", "range_end": "AA==", "prev_kv": true})
    );
    assert_eq!(lease_grant_request(30), json!({"TTL": "30"}));
    assert_eq!(lease_id_request(-2), json!({"ID": "-2"}));
    assert_eq!(compaction_request(5, false), json!({"revision": "5"}));
}

#[test]
fn a_txn_request_names_targets_and_always_sends_the_compared_value() {
    let txn = Txn {
        compare: vec![
            Compare::mod_revision(b"k", CompareOp::Equal, 5),
            Compare::create_revision(b"new", CompareOp::Equal, 0),
            Compare::version(b"k", CompareOp::Greater, 1),
            Compare::value(b"k", CompareOp::NotEqual, b"x"),
            Compare::lease(b"k", CompareOp::Less, 3),
        ],
        success: vec![
            TxnOp::put(b"k", b"v", PutOptions::default()),
            TxnOp::delete(b"old"),
        ],
        failure: vec![TxnOp::get(b"k")],
    };
    assert_eq!(
        txn_request(&txn),
        json!({
            "compare": [
                {"key": "aw==", "result": "EQUAL", "target": "MOD", "mod_revision": "5"},
                {"key": "bmV3", "result": "EQUAL", "target": "CREATE", "create_revision": "0"},
                {"key": "aw==", "result": "GREATER", "target": "VERSION", "version": "1"},
                {"key": "aw==", "result": "NOT_EQUAL", "target": "VALUE", "value": "eA=="},
                {"key": "aw==", "result": "LESS", "target": "LEASE", "lease": "3"},
            ],
            "success": [
                {"request_put": {"key": "aw==", "value": "dg=="}},
                {"request_delete_range": {"key": "b2xk"}},
            ],
            "failure": [{"request_range": {"key": "aw=="}}],
        })
    );
}

#[test]
fn a_watch_request_wraps_its_create_request() {
    let mut request = WatchRequest::new(KeyRange::prefix(b"a"), 12);
    request.prev_kv = true;
    assert_eq!(
        watch_create_request(&request),
        json!({"create_request": {"key": "YQ==", "range_end": "Yg==", "start_revision": "12", "prev_kv": true}})
    );
}
