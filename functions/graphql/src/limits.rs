//! How big a query may be. With the 16 KiB body limit ([`crate::MAX_BODY_BYTES`]), these keep
//! one request's work bounded: a query deeper or costlier than this is refused before any field
//! runs, with a `BAD_USER_INPUT` error whose reason is `query_too_deep` or `query_too_complex`.
//!
//! **Depth** counts nested fields, leaves included. The deepest query of this schema's own types
//! is 7 (`viewer { wallets { payments { edges { node { amount { minorUnits } } } } } }`): no
//! type leads back to a wallet, so nothing recurses. Only introspection does (`__Type.ofType`,
//! `fields { type { fields … } }`), and GraphiQL's introspection query (graphql-js
//! `getIntrospectionQuery`, nine `ofType` levels) reaches 15. So [`MAX_DEPTH`] is 15: every
//! query of this schema and the IDE's introspection pass, and a recursive introspection query
//! deeper than that, the known way to make a GraphQL server walk its schema without end, does
//! not.
//!
//! **Complexity** counts one per field asked for, and a connection's fields once per item its
//! `first` asks for (1 to 100; see [`page_complexity`]): roughly how many values the answer
//! holds. Measured on this schema: one wallet's page of 100 payments with every field costs
//! 2,202, of 100 transactions 1,802; `viewer { wallets { … } }` with every wallet field and the
//! default pages (20) of both lists, 813. [`MAX_COMPLEXITY`] is 2,500: the largest page of
//! either list with every field, or the default pages of both lists for up to three wallets
//! asked for by id, and not two largest pages in one request (aliases of `wallet(id:)` each
//! asking for 100 items, which would make one request read and answer hundreds of items). The
//! caller's list of wallets counts once, whatever their number: the estimate is made before
//! anything is read, and a holder has few wallets.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation};
use async_graphql::{ServerError, ValidationResult};
use paysaga_domain::read_models::PageRequest;

use crate::errors::GraphqlError;

/// The deepest query answered (see the module's documentation for why 15).
pub const MAX_DEPTH: usize = 15;

/// The costliest query answered (see the module's documentation for why 2,500).
pub const MAX_COMPLEXITY: usize = 2_500;

/// What a connection's page costs: its fields once per item asked for. A `first` outside
/// 1 to 100 counts as the nearest bound here; the field itself refuses it, with a clearer error
/// than a limit would give.
pub fn page_complexity(first: Option<i32>, child_complexity: usize) -> usize {
    let items = first
        .map_or(PageRequest::DEFAULT_LIMIT, |first| {
            u32::try_from(first)
                .unwrap_or(1)
                .clamp(1, PageRequest::MAX_LIMIT)
        })
        .try_into()
        .unwrap_or(usize::MAX);
    items.saturating_mul(child_complexity).saturating_add(1)
}

/// The schema extension that refuses a query over [`MAX_DEPTH`] or [`MAX_COMPLEXITY`] once it
/// has validated (the engine measures both while validating).
pub struct QueryLimits;

impl ExtensionFactory for QueryLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(QueryLimits)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for QueryLimits {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let measured = next.run(ctx).await?;
        if measured.depth > MAX_DEPTH {
            return Err(vec![
                GraphqlError::bad_user_input(
                    "query_too_deep",
                    format!(
                        "the query nests fields {} deep; at most {MAX_DEPTH} are answered",
                        measured.depth
                    ),
                )
                .into_server_error(),
            ]);
        }
        if measured.complexity > MAX_COMPLEXITY {
            return Err(vec![
                GraphqlError::bad_user_input(
                    "query_too_complex",
                    format!(
                        "the query would answer about {} values; at most {MAX_COMPLEXITY} are \
                         answered in one request (ask for smaller pages with `first`, or fewer \
                         lists at once)",
                        measured.complexity
                    ),
                )
                .into_server_error(),
            ]);
        }
        Ok(measured)
    }
}
