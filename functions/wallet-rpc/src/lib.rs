//! (to be written)

mod config;

use std::sync::Arc;

use axum::Router;
use paysaga_services::self_service::SelfService;

pub use config::Config;

pub fn router(service: Arc<SelfService>) -> Router {
    Router::new().with_state(service)
}
