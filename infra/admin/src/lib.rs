//! paysaga's operator tools: the `paysaga-admin` command (the dead-letter queues and the parking
//! table through the dlq-redrive function, [`dlq`], replays through the admin API,
//! [`admin_api`]; rebuilding the read models), and the local stack's development tokens
//! ([`dev_token`]), which the integration tests and the bench use too.

pub mod admin_api;
pub mod dev_token;
pub mod dlq;
