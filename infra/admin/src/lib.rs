//! paysaga's operator tools: the `paysaga-admin` command, and the local stack's development
//! tokens ([`dev_token`]), which the integration tests and the bench use too.

pub mod dev_token;
