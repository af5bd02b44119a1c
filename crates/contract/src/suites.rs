//! The macros that generate a backend's contract tests. A backend's test file names a
//! fixture, and gets one `#[tokio::test]` per contract function:
//!
//! ```ignore
//! async fn fixture() -> Option<(MyStore, Arc<dyn Queue>, TempDir)> { … }
//! herald_contract::store_contract!(fixture);
//! ```
//!
//! A fixture answers `None` to skip (an emulator that is not running); the third
//! element is kept alive for the test (a temporary directory, say).

/// One test per store contract function. The fixture gives the store (every store
/// port, `Clone`), the queue its outbox writes to, and a guard.
#[macro_export]
macro_rules! store_contract {
    ($fixture:path) => {
        $crate::store_contract!(@tests $fixture;
            store_accepts_once_per_idempotency_key =>
                |s, _q| $crate::store_accepts_once_per_idempotency_key(std::sync::Arc::new(s));
            store_writes_the_outbox_with_the_notification =>
                |s, q| $crate::store_writes_the_outbox_with_the_notification(&s, q.as_ref());
            store_keeps_deliveries_planned_at_intake =>
                |s, q| $crate::store_keeps_deliveries_planned_at_intake(&s, q.as_ref());
            store_keeps_a_single_planned_delivery =>
                |s, _q| $crate::store_keeps_a_single_planned_delivery(&s);
            store_reads_a_batch_of_deliveries_to_send =>
                |s, _q| $crate::store_reads_a_batch_of_deliveries_to_send(&s);
            store_enforces_the_status_machines =>
                |s, q| $crate::store_enforces_the_status_machines(&s, q.as_ref());
            store_lists_by_app_with_filters => |s, _q| $crate::store_lists_by_app_with_filters(&s);
            store_keeps_api_keys_hashed_and_settings =>
                |s, _q| $crate::store_keeps_api_keys_hashed_and_settings(&s);
            templates_keep_immutable_versions =>
                |s, _q| $crate::templates_keep_immutable_versions(&s);
            users_upsert_keep_created_and_list_by_id =>
                |s, _q| $crate::users_upsert_keep_created_and_list_by_id(&s);
            groups_hold_many_users_and_users_many_groups =>
                |s, _q| $crate::groups_hold_many_users_and_users_many_groups(&s);
            preferences_survive_profile_upserts_and_writes_are_conditional =>
                |s, _q| $crate::preferences_survive_profile_upserts_and_writes_are_conditional(&s);
            categories_are_per_app_and_listed_by_name =>
                |s, _q| $crate::categories_are_per_app_and_listed_by_name(&s);
            cap_slots_count_each_delivery_once_up_to_the_limit =>
                |s, _q| $crate::cap_slots_count_each_delivery_once_up_to_the_limit(&s);
            dispatch_honours_preferences => |s, _q| $crate::dispatch_honours_preferences(&s);
            integrations_are_replaced_under_a_revision =>
                |s, _q| $crate::integrations_are_replaced_under_a_revision(&s);
            sends_fail_over_from_a_suspended_integration =>
                |s, q| $crate::sends_fail_over_between_integrations(std::sync::Arc::new(s), q.as_ref(), "broken");
            sends_fail_over_when_retries_run_out =>
                |s, q| $crate::sends_fail_over_between_integrations(std::sync::Arc::new(s), q.as_ref(), "flaky");
            sends_dead_letter_a_job_given_up_just_before_a_stop =>
                |s, q| $crate::sends_dead_letter_a_job_given_up_just_before_a_stop(std::sync::Arc::new(s), q.clone());
        );
    };
    (@tests $fixture:path; $($name:ident => |$s:ident, $q:ident| $call:expr;)+) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $name() {
            let Some(($s, $q, _guard)) = $fixture().await else { return };
            $call.await;
        }
    )+};
}

/// One test per queue contract function. The fixture gives the queue, how its time
/// passes (a clock to advance, or the wall clock for a backend that keeps its own) and
/// a guard; `late_ack_ignored` says whether the backend ignores an acknowledgement
/// with an expired lease's token.
#[macro_export]
macro_rules! queue_contract {
    ($fixture:path, late_ack_ignored: $late:expr) => {
        $crate::queue_contract!(@tests $fixture;
            queue_serves_strict_priority => |q, _t| $crate::queue_serves_strict_priority(&q);
            queue_dead_letters_keep_the_job => |q, _t| $crate::queue_dead_letters_keep_the_job(&q);
            queue_takes_large_batches => |q, _t| $crate::queue_takes_large_batches(&q);
            queue_leases_hide_jobs_until_they_expire =>
                |q, t| $crate::queue_leases_hide_jobs_until_they_expire(&q, $late, t.as_ref());
            queue_retries_after_a_delay => |q, t| $crate::queue_retries_after_a_delay(&q, t.as_ref());
            queue_delays_jobs => |q, t| $crate::queue_delays_jobs(&q, t.as_ref());
        );
    };
    (@tests $fixture:path; $($name:ident => |$q:ident, $t:ident| $call:expr;)+) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $name() {
            let Some(($q, $t, _guard)) = $fixture().await else { return };
            $call.await;
        }
    )+};
}
