//! Integration secrets in SSM SecureString parameters, through the real AWS SDK
//! against the moto server on loopback: sealed under the stack's path, opened by
//! version, gone after removal.

use herald_aws::ssm::SsmVault;
use herald_contract as contract;
use herald_core::integrations::{SecretValues, SecretVault};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn secrets_rest_in_secure_string_parameters_under_the_stack_path() {
    let Some(config) = contract::emulator_config().await else { return };
    let ssm = aws_sdk_ssm::Client::new(&config);
    let path = format!("/herald-test/{}/integrations", contract::unique_prefix());
    let vault = SsmVault::new(ssm.clone(), &path, Duration::from_secs(300));
    let first = SecretValues::from([("bot_token".to_owned(), "xoxb-first".to_owned())]);
    let sealed = vault.seal("shop", "int_1", &first).await.unwrap();
    assert!(!sealed.contains("xoxb"), "the record holds a reference, not the secret");
    assert_eq!(vault.open("shop", "int_1", &sealed).await.unwrap(), first);

    let parameter = ssm
        .get_parameter()
        .name(format!("{path}/shop/int_1"))
        .send()
        .await
        .unwrap()
        .parameter
        .unwrap();
    assert_eq!(parameter.r#type.unwrap().as_str(), "SecureString");

    // A rotated secret is a new version: the next open reads it, not the cached one.
    let second = SecretValues::from([("bot_token".to_owned(), "xoxb-second".to_owned())]);
    let resealed = vault.seal("shop", "int_1", &second).await.unwrap();
    assert_ne!(resealed, sealed);
    assert_eq!(vault.open("shop", "int_1", &resealed).await.unwrap(), second);
    // Another integration's reference does not open this one's parameter.
    assert!(vault.open("shop", "int_2", &resealed).await.is_err());
    // App ids outside SSM's name alphabet still get a parameter of their own.
    let odd = vault.seal("shop floor", "int_1", &first).await.unwrap();
    assert_eq!(vault.open("shop floor", "int_1", &odd).await.unwrap(), first);

    vault.remove("shop", "int_1").await.unwrap();
    vault.remove("shop", "int_1").await.unwrap(); // Removing twice is fine.
    let gone = ssm.get_parameter().name(format!("{path}/shop/int_1")).send().await;
    assert!(gone.is_err());
}
