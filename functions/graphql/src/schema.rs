//! The schema: its queries, its mutations and its federation entities, each a call of
//! [`SelfService`] for the caller of the request ([`CallerScope`]).

use std::sync::Arc;

use async_graphql::{Context, EmptySubscription, ID, Object, SDLExportOptions, Schema};
use paysaga_domain::Owner;
use paysaga_services::self_service::{Refusal, SelfService};

use crate::errors::{GraphqlError, TypedErrors};
use crate::inputs::{
    OpenWalletInput, PaymentSubmission, PayoutInput, SubmitPaymentInput, TopUpInput, WalletOpening,
    payment_id, wallet_id,
};
use crate::limits::QueryLimits;
use crate::loader::{WalletLoader, Wallets};
use crate::objects::{Payment, Wallet};

/// The subgraph's schema.
pub type PaysagaSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema, built once per process. It holds no caller and no client: each request brings
/// its `CallerScope`.
pub fn schema() -> PaysagaSchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .enable_federation()
        .extension(TypedErrors)
        .extension(QueryLimits)
        .finish()
}

/// The schema as `_service { sdl }` answers it: Apollo Federation 2, with its `@link`, for a
/// router's composition (and `schema.graphql`, checked in beside this crate).
pub fn federation_sdl(schema: &PaysagaSchema) -> String {
    schema.sdl_with_options(SDLExportOptions::new().federation().compose_directive())
}

/// Who a request is for: its caller, the owner's operations, and the caller's wallets loaded
/// in batches. Every field reads them from here, so nothing answers without a caller.
pub struct CallerScope {
    service: Arc<SelfService>,
    owner: Owner,
    wallets: Wallets,
}

impl CallerScope {
    pub fn new(service: Arc<SelfService>, owner: Owner) -> Self {
        let wallets = WalletLoader::for_caller(service.clone(), owner.clone());
        Self {
            service,
            owner,
            wallets,
        }
    }

    /// The scope of the request a field runs in (`UNAUTHENTICATED` when it has none).
    pub fn of<'a>(ctx: &Context<'a>) -> Result<&'a Self, GraphqlError> {
        ctx.data_opt::<Self>()
            .ok_or_else(GraphqlError::unauthenticated)
    }

    pub fn service(&self) -> &SelfService {
        &self.service
    }

    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// One of the caller's wallets, through the request's loader (so with the others the
    /// request asks for, in one read).
    async fn wallet(&self, id: &str) -> Result<Wallet, GraphqlError> {
        let id = wallet_id(id)?;
        // SelfService::wallets answers every id it is asked: an id left unanswered would be
        // no wallet at all.
        let answer = self.wallets.load_one(id.clone()).await?;
        let wallet = answer.ok_or_else(|| {
            GraphqlError::from(Refusal::NotFound(format!("wallet {id} does not exist")))
        })??;
        Ok(wallet.into())
    }

    async fn payment(&self, id: &str) -> Result<Payment, GraphqlError> {
        let id = payment_id(id)?;
        Ok(self.service.payment(&self.owner, &id).await?.into())
    }

    async fn submit(&self, submission: PaymentSubmission) -> Result<Payment, GraphqlError> {
        let payment = self
            .service
            .submit(&self.owner, submission.order, &submission.key)
            .await?;
        Ok(payment.into())
    }
}

/// What a caller reads.
pub struct Query;

/// What a caller reads: its wallets and their history, its payments.
#[Object]
impl Query {
    /// The caller: who the request's bearer token names. A caller sees only itself.
    async fn viewer(&self) -> Viewer {
        Viewer
    }

    /// One of the caller's wallets (null, with a `FORBIDDEN` error, when it is someone
    /// else's).
    async fn wallet(&self, ctx: &Context<'_>, id: ID) -> Option<Wallet> {
        let wallet = async { CallerScope::of(ctx)?.wallet(&id).await }.await;
        null_on_error(ctx, wallet)
    }

    /// A payment that debits or credits one of the caller's wallets (null, with a
    /// `FORBIDDEN` error, otherwise).
    async fn payment(&self, ctx: &Context<'_>, id: ID) -> Option<Payment> {
        let payment = async { CallerScope::of(ctx)?.payment(&id).await }.await;
        null_on_error(ctx, payment)
    }

    /// A wallet by its key, for the router (`_entities`): read with the request's other
    /// wallets in one batch.
    #[graphql(entity)]
    async fn find_wallet_by_id(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Wallet> {
        Ok(CallerScope::of(ctx)?.wallet(&id).await?)
    }

    /// A payment by its key, for the router (`_entities`).
    #[graphql(entity)]
    async fn find_payment_by_id(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Payment> {
        Ok(CallerScope::of(ctx)?.payment(&id).await?)
    }
}

/// A nullable field's answer: its value, or null and its error in the response's `errors`
/// (with the field's path). async-graphql would leave a failed field out of `data` instead,
/// and make `data` null when no field is left.
fn null_on_error<T>(ctx: &Context<'_>, answer: Result<T, GraphqlError>) -> Option<T> {
    match answer {
        Ok(value) => Some(value),
        Err(error) => {
            let error = async_graphql::Error::from(error).into_server_error(ctx.item.pos);
            ctx.add_error(ctx.set_error_path(error));
            None
        }
    }
}

/// The caller of the request. It shows what the caller holds, not who it is: the token's
/// subject may be personal data.
pub struct Viewer;

/// The caller of the request: what it holds, never who it is (its token's subject may be
/// personal data).
#[Object]
impl Viewer {
    /// Every wallet the caller holds, by id (read in one batch).
    async fn wallets(&self, ctx: &Context<'_>) -> Result<Vec<Wallet>, GraphqlError> {
        let caller = CallerScope::of(ctx)?;
        let wallets = caller.service.wallets_of(&caller.owner).await?;
        // Whatever else the request asks of these wallets by id is answered from this read.
        caller
            .wallets
            .feed_many(
                wallets
                    .iter()
                    .map(|wallet| (wallet.id().clone(), Ok(wallet.clone()))),
            )
            .await;
        Ok(wallets.into_iter().map(Wallet::from).collect())
    }
}

/// What a caller does: open a wallet, move money. A payment is answered as it stands when
/// accepted (`PENDING`): the saga moves it on; `payment(id:)` follows it.
pub struct Mutation;

/// What a caller does: open a wallet, move money. Each payment takes an idempotency key, and
/// is answered as it stands once accepted (`PENDING`); `payment(id:)` follows it.
#[Object]
impl Mutation {
    /// Opens a wallet for the caller, in a currency wallets may hold. Opening it again (the
    /// same id and currency) answers the wallet as it is.
    async fn open_wallet(
        &self,
        ctx: &Context<'_>,
        input: OpenWalletInput,
    ) -> Result<Wallet, GraphqlError> {
        let caller = CallerScope::of(ctx)?;
        let opening = WalletOpening::try_from(input)?;
        let opened = caller
            .service
            .open_wallet(&caller.owner, opening.id, opening.currency)
            .await?;
        Ok(opened.wallet.into())
    }

    /// Submits a transfer from one of the caller's wallets to another wallet.
    async fn submit_payment(
        &self,
        ctx: &Context<'_>,
        input: SubmitPaymentInput,
    ) -> Result<Payment, GraphqlError> {
        CallerScope::of(ctx)?.submit(input.try_into()?).await
    }

    /// Submits a top-up of one of the caller's wallets from its funding instrument.
    async fn top_up(&self, ctx: &Context<'_>, input: TopUpInput) -> Result<Payment, GraphqlError> {
        CallerScope::of(ctx)?.submit(input.try_into()?).await
    }

    /// Submits a payout from one of the caller's wallets to its destination.
    async fn payout(&self, ctx: &Context<'_>, input: PayoutInput) -> Result<Payment, GraphqlError> {
        CallerScope::of(ctx)?.submit(input.try_into()?).await
    }
}
