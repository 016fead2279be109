//! The bare runtime: a `lambda_runtime` function that answers `{}`. The cold start every
//! paysaga function is compared with.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async {
        Ok::<_, Error>(Value::Object(Default::default()))
    }))
    .await
}
